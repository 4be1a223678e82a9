-- tensor.lua - aim.tensor and aim.png: creation, shapes, 1-based indexing
-- with views, narrowing, reshaping, arithmetic, .npy save/load, PNG output,
-- <close>, and the errors each raises or returns.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"

-- creation and shape
local t = aim.tensor{{1, 2, 3}, {4, 5, 6}}
T.ok(tostring(t):find("aim.tensor [2,3] float32", 1, true), "tostring: " .. tostring(t))
T.is(#t, 2, "#t is the first dimension")
T.is(t:dim(), 2, "dim")
T.is(t:numel(), 6, "numel")
T.is(table.concat(t:shape(), ","), "2,3", "shape")
T.is(t:size(2), 3, "size(2)")
T.raises("no such dimension", "size(3) raises", t.size, t, 3)
T.is(aim.tensor.new{7, 8}[2], 8.0, "aim.tensor.new is aim.tensor")

-- indexing: t[i] is a view (a number for 1-d); out of range gives nil
local row = t[2]
T.is(tostring(row):match("%[.-%]"), "[3]", "t[2] is a row [3]")
T.is(row[1], 4.0, "t[2][1] = 4")
T.is(t[3], nil, "t[3] is nil (like a table)")
T.is(t[0], nil, "t[0] is nil")
local n = 0
for _, r in ipairs(t) do n = n + r:sum() end
T.is(n, 21.0, "ipairs walks the rows")
row[1] = 40
T.is(t:get(2, 1), 40.0, "writing through a view changes the tensor")
t[1] = 0
T.is(t[1]:sum(), 0.0, "t[i] = number fills a row")
t[1] = aim.tensor{1, 2, 3}
T.is(t:get(1, 3), 3.0, "t[i] = tensor copies a row")
T.raises("outside 1..2", "t[3] = ... raises", function() t[3] = 1 end)
T.raises("size differs", "t[1] = a tensor of the wrong size raises", function() t[1] = aim.tensor{1, 2} end)
T.is(t:set(2, 3, 9):get(2, 3), 9.0, "set / get")
T.raises("outside 1..3", "get out of range raises", t.get, t, 1, 4)
T.is(#t:totable(), 2, "totable gives nested tables")
T.is(t:totable()[2][3], 9.0, "... with the values")

-- narrow, reshape, clone
local big = aim.tensor.zeros(4, 2, 3)
local part = big:narrow(1, 2, 2)
T.is(table.concat(part:shape(), ","), "2,2,3", "narrow(1, 2, 2)")
part:fill(1)
T.is(big:sum(), 12.0, "narrow along dim 1 is a view")
local cols = t:narrow(2, 2, 2)
T.is(table.concat(cols:totable()[2], ","), "5.0,9.0", "narrow along dim 2 copies the columns")
T.raises("past the end", "narrow past the end raises", t.narrow, t, 1, 2, 2)
local flat = big:reshape(-1)
T.is(#flat, 24, "reshape(-1) flattens")
T.is(table.concat(big:reshape{6, 4}:shape(), ","), "6,4", "reshape with a table")
T.raises("cannot reshape", "a bad reshape raises", big.reshape, big, 5, 5)
local c = t:clone()
c:fill(0)
T.ok(t:sum() > 0 and c:sum() == 0, "clone copies")
T.is(aim.tensor.cat{t, c}:size(1), 4, "cat along the first dimension")
T.raises("does not match", "cat of different shapes raises", aim.tensor.cat, {t, big})
T.raises("not a tensor", "cat of a non-tensor raises", aim.tensor.cat, {t, 3})

-- arithmetic and reductions
local a = aim.tensor{1, 2, 3, 4}
T.is(table.concat((a + 1):totable(), ","), "2.0,3.0,4.0,5.0", "tensor + number")
T.is(table.concat((2 * a):totable(), ","), "2.0,4.0,6.0,8.0", "number * tensor")
T.is(table.concat((a - a):totable(), ","), "0.0,0.0,0.0,0.0", "tensor - tensor")
T.is(table.concat((a / 2):totable(), ","), "0.5,1.0,1.5,2.0", "tensor / number")
T.is((-a):sum(), -10.0, "unary minus")
T.is(a:mean(), 2.5, "mean")
T.is(a:min(), 1.0, "min")
T.is(a:max(), 4.0, "max")
T.is(a:clone():clamp(2, 3):sum(), 10.0, "clamp")
T.raises("differ", "shapes must match", function() return a + t end)

-- creation errors
T.raises("empty table", "an empty table raises", aim.tensor, {})
T.raises("ragged", "a ragged table raises", aim.tensor, {{1, 2}, {3}})
T.raises("not a number", "a non-number raises", aim.tensor, {1, "x"})
T.raises("must be positive", "a zero size raises", aim.tensor.zeros, 0)
T.raises("too large", "a huge shape raises", aim.tensor.zeros, 1 << 20, 1 << 20, 1 << 20)

-- .npy
local p = T.path("t.npy")
T.is(t:save(p), true, "save returns true")
local u = aim.tensor.load(p)
T.ok(u and table.concat(u:shape(), ",") == "2,3" and u:get(2, 3) == 9.0, "load gives it back")
T.fails("t.npy", "save into a missing folder", t.save, t, T.path("no/such/t.npy"))
T.fails("nothing.npy", "load of a missing file", aim.tensor.load, T.path("nothing.npy"))
T.write(T.path("junk.npy"), "not an npy file at all")
T.fails("junk.npy", "load of a corrupt file", aim.tensor.load, T.path("junk.npy"))
T.write(T.path("u8.npy"), T.npy("|u1", {2, 2}, "\0\1\128\255"))
local b = aim.tensor.load(T.path("u8.npy"))
T.ok(b and b:get(2, 2) == 255.0 and b:get(2, 1) == 128.0, "uint8 .npy loads as float32 0..255")
T.write(T.path("i2.npy"), T.npy("<i2", {2}, "\1\0\2\0"))
T.fails("i2.npy", "an unsupported dtype", aim.tensor.load, T.path("i2.npy"))

-- <close> and views
local view
do
    local owner <close> = aim.tensor{{1, 2}, {3, 4}}
    view = owner[2]
end
T.is(view[1], 3.0, "a view outlives the closed tensor it came from")
local closed
do
    local x <close> = aim.tensor.zeros(2)
    closed = x
end
T.ok(tostring(closed):find("closed"), "a closed tensor says so")
T.raises("closed", "using a closed tensor raises", function() return closed:sum() end)

-- a table length from __len is checked before it becomes an int
local liar = setmetatable({}, {__len = function() return 2^32 + 2 end})
T.raises("1..8 sizes", "a shape table whose __len says 2^32 + 2 raises", aim.tensor.zeros, liar)

-- PNG
local img = aim.tensor.zeros(1, 4, 6):fill(0.5)
T.is(aim.png.write(T.path("gray.png"), img), true, "png.write [1,H,W]")
T.is(T.read(T.path("gray.png")):sub(1, 4), "\137PNG", "... writes a PNG")
T.is(aim.png.write(T.path("rgb.png"), aim.tensor.zeros(3, 4, 4):fill(200)), true, "png.write [3,H,W] in 0..255")
T.is(aim.png.write(T.path("grid.png"), aim.tensor.zeros(5, 1, 4, 4), {cols = 2, scale = 3}), true, "png.write grid [N,C,H,W]")
T.is(aim.png.write(T.path("hw.png"), aim.tensor.zeros(4, 4), {range = 1}), true, "png.write [H,W]")
T.raises("C = 1 or 3", "a grid with 2 channels raises", aim.png.write, T.path("x.png"), aim.tensor.zeros(2, 2, 4, 4))
T.raises("expected [H,W]", "a 1-d tensor raises", aim.png.write, T.path("x.png"), aim.tensor.zeros(4))
T.raises("unknown option 'scal'", "an unknown option raises", aim.png.write, T.path("x.png"), img, {scal = 2})
T.raises("must be 1 or 255", "a bad range raises", aim.png.write, T.path("x.png"), img, {range = 7})
T.fails("no/such", "png.write into a missing folder", aim.png.write, T.path("no/such/x.png"), img)
-- a side of 2^31 once became a negative int: the size check passed and the
-- copy wrote past its buffer (SIGSEGV); the tensor is 8 GiB of untouched zeros
local limit = aim.memory_limit()
aim.memory_limit(0)
local made, big = pcall(aim.tensor.zeros, 1, 2^31)
if made then
    T.raises("too large", "png.write of a [1, 2^31] tensor raises", aim.png.write,
             T.path("big.png"), big, {range = 255})
    T.raises("over 2^20", "maps.rgb of one patch with 2^31 projections raises", aim.maps.rgb,
             big)
    T.raises("too large", "... and of [2^31, 1, 1, 1] (a grid)", aim.png.write,
             T.path("big.png"), big:reshape(2^31, 1, 1, 1), {range = 255})
else
    -- one SKIP for each of the three checks above
    local why = "cannot allocate 8 GiB here: " .. tostring(big)
    T.skip("png.write of a [1, 2^31] tensor: " .. why)
    T.skip("maps.rgb of 2^31 projections: " .. why)
    T.skip("png.write of a [2^31, 1, 1, 1] grid: " .. why)
end
big = nil
collectgarbage()
aim.memory_limit(limit)

T.done()
