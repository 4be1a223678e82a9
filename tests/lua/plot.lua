-- plot.lua - aim.plot (the PNG plot writer; its pixels are checked in
-- tests/test_plot.c): the file it writes (PNG signature, IHDR size), the
-- frame it returns, tensors as values, every bad option raising with a
-- message naming it, an unwritable path as nil, message; and
-- aim.validation_loss (the val_loss of `aim train`) against m:loss.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"

local dir = T.tmpdir()

-- the PNG's width and height from its IHDR chunk
local function png_size(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local head = f:read(24)
    f:close()
    if not head or #head < 24 or head:sub(1, 8) ~= "\137PNG\r\n\26\n" or head:sub(13, 16) ~= "IHDR" then
        return nil
    end
    return string.unpack(">I4", head, 17), string.unpack(">I4", head, 21)
end

local path = dir .. "/p.png"
local f = aim.plot{path = path, width = 300, height = 200, title = "t", xlabel = "x", ylabel = "y",
                   series = {{x = {1, 2, 3}, y = {10, 20, 15}, label = "a"},
                             {x = aim.tensor{1.5, 2.5}, y = aim.tensor{12, 18}, points = false,
                              color = "#00ff00"}}}
local w, h = png_size(path)
T.ok(w == 300 and h == 200, "aim.plot writes a PNG of the asked size", string.format("%s x %s", w, h))
T.ok(type(f) == "table" and f.left > 0 and f.right < 299 and f.top > 0 and f.bottom < 199
     and f.left < f.right and f.top < f.bottom, "it returns the plot area's pixels", aim.format(f))
T.ok(f.xmin < 1 and f.xmax > 3 and f.ymin < 10 and f.ymax > 20 and f.xmax < 4 and f.ymax < 22,
     "and the data range it spans, padded a little", aim.format(f))
f = aim.plot{path = path, series = {{x = {0.5}, y = {1}}}}
w, h = png_size(path)
T.ok(w == 640 and h == 480 and f.xmin < 0.5 and f.xmax > 0.5, "default size 640x480; one point is enough")

local function plot_with(series, extra)
    local o = {path = path, series = series}
    for k, v in pairs(extra or {}) do o[k] = v end
    return aim.plot(o)
end
local ok3 = {x = {1, 2, 3}, y = {1, 2, 3}}
T.raises("give option 'path' (the PNG to write), 'show = true'", "path or show is required",
         aim.plot, {series = {ok3}})
T.ok(aim.plot{show = true, series = {ok3}} == true, "show = true alone: no file, returns true")
T.raises("is not finite", "show = true checks the series as a PNG would", aim.plot,
         {show = true, series = {{x = {1}, y = {0 / 0}}}})
T.raises("'show'", "show must be a boolean", aim.plot, {show = "yes", path = path, series = {ok3}})
do
    local both = dir .. "/both.png"
    local f = aim.plot{show = true, path = both, series = {ok3}}
    T.ok(type(f) == "table" and f.right > f.left and io.open(both) ~= nil,
         "show = true with a path writes the PNG and returns its frame")
end
T.raises("unknown option 'serie'", "unknown options are named", aim.plot, {path = path, serie = {ok3}})
T.raises("option 'series' must be a table", "series is required", aim.plot, {path = path})
T.raises("option 'series' has 0 series", "at least one series", plot_with, {})
T.raises("width", "width below 64", plot_with, {ok3}, {width = 10})
T.raises("height", "height above 4096", plot_with, {ok3}, {height = 5000})
T.raises("series[1]: x has 3 values but y has 2", "lengths must match", plot_with, {{x = {1, 2, 3}, y = {1, 2}}})
T.raises("series[2].y[2] is not finite", "NaN is refused, naming the value", plot_with,
         {ok3, {x = {1, 2}, y = {1, 0 / 0}}})
T.raises("series[1].x[1] is not finite", "Inf is refused", plot_with, {{x = {math.huge}, y = {1}}})
T.raises("series[1].x[2] is not a number", "a string value is refused", plot_with, {{x = {1, "2"}, y = {1, 2}}})
T.raises("series[1].x has 0 values", "an empty series is refused", plot_with, {{x = {}, y = {}}})
T.raises("series[1].y must be a table of numbers", "y is required", plot_with, {{x = {1}}})
T.raises("series[1]: unknown key 'lable'", "unknown series keys are named", plot_with,
         {{x = {1}, y = {1}, lable = "a"}})
T.raises("series[1].color '#12345' is not", "a bad colour string", plot_with, {{x = {1}, y = {1}, color = "#12345"}})
T.raises("series[1].color must be 0..0xFFFFFF", "a colour out of range", plot_with, {{x = {1}, y = {1}, color = -1}})
T.raises("series[1].points must be true or false", "points is a boolean", plot_with, {{x = {1}, y = {1}, points = 1}})
T.raises("draws neither points nor a line", "a series must draw something", plot_with,
         {{x = {1}, y = {1}, points = false, line = false}})
T.raises("title is longer than", "a title over 200 bytes", plot_with, {ok3}, {title = string.rep("a", 201)})
T.raises("the tensor is not 1-d", "tensors must be 1-d", plot_with, {{x = aim.tensor.zeros(2, 2), y = {1, 2, 3, 4}}})
local many = {}
for i = 1, 17 do many[i] = ok3 end
T.raises("17 series (1..16)", "at most 16 series", plot_with, many)
many[17] = nil
T.ok(plot_with(many), "16 series of table values (48 stack slots) plot")
T.fails("no/such/dir", "an unwritable path: nil, message", aim.plot,
        {path = dir .. "/no/such/dir/p.png", series = {ok3}})

-- aim.validation_loss: on one image it is m:loss at the prefix that image
-- draws, so it must equal m:loss at one of the prefixes 1..N-1
local m = aim.model{preset = "micro", seed = 3}
local c = m:config()
local ds = aim.data.synthetic{n = 40, channels = c.channels, size = c.image, seed = 1}
local N = (c.image // c.patch) ^ 2
local v1 = aim.validation_loss(m, ds, {images = 1, seed = 7})
local x = ds:batch(1, 1)
local match
for s = 1, N - 1 do
    if math.abs(m:loss(x, {prefix = s}) - v1) <= 1e-5 * math.abs(v1) then match = s end
end
T.ok(match ~= nil, "validation_loss on one image is m:loss at one prefix" .. (match and " (S = " .. match .. ")" or ""),
     string.format("%g matches no prefix", v1))
local v = aim.validation_loss(m, ds, {images = 40, batch = 16, seed = 7})
local v7 = aim.validation_loss(m, ds, {images = 40, batch = 7, seed = 7})
T.ok(v > 0 and math.abs(v - v7) <= 1e-5 * v, "40 images: positive, the same in batches of 16 and 7",
     string.format("%.9g vs %.9g", v, v7))
T.ok(aim.validation_loss(m, ds, {images = 1000}) == aim.validation_loss(m, ds, {images = 40}),
     "images beyond the dataset are clipped to it")
local other = aim.data.synthetic{n = 4, channels = c.channels, size = c.image + 2}
T.raises("bad argument #2", "a dataset of another image size is refused", aim.validation_loss, m, other)
T.raises("unknown option 'imagez'", "unknown options are named", aim.validation_loss, m, ds, {imagez = 3})
T.raises("'batch'", "batch must be positive", aim.validation_loss, m, ds, {batch = 0})
T.done()
