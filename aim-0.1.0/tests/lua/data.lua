-- data.lua - aim.data: the synthetic set, files the test writes itself (IDX,
-- CIFAR-10 .bin, a PNG class folder), Fashion-MNIST when installed, dataset
-- methods and fields, and the errors they raise or return.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"

-- synthetic
local ds = aim.data.synthetic{n = 50, channels = 3, size = 8, classes = 4, seed = 3}
T.is(#ds, 50, "#ds")
T.ok(tostring(ds):find("synthetic: 50 images 3x8x8, 4 classes", 1, true), "tostring: " .. tostring(ds))
T.is(ds.n, 50, "ds.n")
T.is(ds.channels .. "x" .. ds.height .. "x" .. ds.width, "3x8x8", "ds.channels / height / width")
T.is(ds.kind, "synthetic", "ds.kind")
T.is(ds.nonsense, nil, "an unknown field is nil")
local info = ds:info()
T.ok(info.n == 50 and info.classes_count == 4 and #info.classes == 4 and #info.mean == 3 and #info.std == 3,
     "info() has counts, classes, mean and std")
T.is(ds:classes()[1], "disc", "class names")
local x, y = ds:batch(1, 10)
T.is(table.concat(x:shape(), ","), "10,3,8,8", "batch(1, 10) gives images [10,3,8,8]")
T.ok(type(y) == "table" and #y == 10 and math.type(y[1]) == "integer" and y[1] >= 0 and y[1] < 4,
     "labels: a table of 0-based class ids")
local all = ds:batch(1, 50)
T.near(all:mean(), 0, 0.05, "images are normalised with the dataset's mean/std")
local raw = ds:batch(1, 50, {normalize = false})
T.ok(raw:min() >= 0 and raw:max() <= 1, "normalize = false gives x/255 in [0,1]")
local tail, ty = ds:batch(45, 10)
T.ok(#tail == 6 and #ty == 6, "a batch is clipped at the end of the set")
T.is(ds:batch(3, 1)[1]:sum(), x[3]:sum(), "batch(i, 1) is image i")
T.raises("outside 1..50", "batch(0, ...) raises", ds.batch, ds, 0, 1)
T.raises("outside 1..50", "batch past the end raises", ds.batch, ds, 51, 1)
T.raises("count", "a zero count raises", ds.batch, ds, 1, 0)
T.raises("did you mean 'normalize'", "an unknown batch option raises", ds.batch, ds, 1, 1, {normalise = false})
local same = aim.data.synthetic{n = 50, channels = 3, size = 8, classes = 4, seed = 3}
T.is(same:batch(7, 1):sum(), ds:batch(7, 1):sum(), "the same seed gives the same images")
T.raises("option 'classes' must be in 2..10", "11 classes raises", aim.data.synthetic, {classes = 11})
T.raises("option 'channels'", "5 channels raises", aim.data.synthetic, {channels = 5})
T.raises("option 'n'", "n = 0 raises", aim.data.synthetic, {n = 0})
T.raises("did you mean 'size'", "an unknown option raises", aim.data.synthetic, {sise = 8})
T.raises("table expected", "synthetic without a table raises", aim.data.synthetic)

-- convert
local cv = aim.data.synthetic{n = 4, size = 16}
T.is(cv:convert{size = 8, channels = 3}, cv, "convert returns the dataset")
T.is(cv.channels .. "x" .. cv.height, "3x8", "convert changes channels and size")
T.raises("channels must be 1, 3 or 4", "convert to 2 channels raises", cv.convert, cv, {channels = 2})

-- IDX files (train-images / train-labels)
local n, rows = 3, 4
local pix = {}
for i = 1, n * rows * rows do pix[i] = string.char((i * 7) % 256) end
T.write(T.path("train-images-idx3-ubyte"), string.pack(">I4I4I4I4", 0x803, n, rows, rows) .. table.concat(pix))
T.write(T.path("train-labels-idx1-ubyte"), string.pack(">I4I4", 0x801, n) .. "\2\0\1")
local idx = aim.data.open(T.path("train-images-idx3-ubyte"))
T.ok(idx and #idx == 3 and idx.height == 4 and idx.kind == "idx", "open an IDX file: " .. tostring(idx))
local _, labels = idx:batch(1, 3)
T.is(table.concat(labels, ","), "2,0,1", "IDX labels are paired from the labels file")
local idx2 = aim.data.open(T.tmpdir(), {split = "train", size = 8, channels = 3, limit = 2})
T.ok(idx2 and #idx2 == 2 and idx2.height == 8 and idx2.channels == 3, "open an IDX folder with size, channels, limit")
T.raises("'split' must be", "a bad split raises", aim.data.open, T.tmpdir(), {split = "val"})

-- CIFAR-10 .bin
local rec = {}
for i = 1, 2 do rec[i] = string.char(i + 4) .. string.rep(string.char(i * 50), 3072) end
T.write(T.path("data_batch_1.bin"), table.concat(rec))
local cifar = aim.data.open(T.path("data_batch_1.bin"))
T.ok(cifar and #cifar == 2 and cifar.channels == 3 and cifar.height == 32, "open a CIFAR-10 batch")
local _, cl = cifar:batch(1, 2)
T.is(table.concat(cl, ","), "5,6", "CIFAR labels")

-- a PNG class folder, written with aim.png
local root = T.path("pngs")
os.execute("mkdir -p '" .. root .. "/cat' '" .. root .. "/dog'")
aim.png.write(root .. "/cat/a.png", aim.tensor.zeros(1, 6, 6):fill(0.2))
aim.png.write(root .. "/dog/b.png", aim.tensor.zeros(1, 6, 6):fill(0.8))
aim.png.write(root .. "/dog/c.png", aim.tensor.zeros(1, 6, 6):fill(0.9))
local pd = aim.data.open(root, {size = 4})
T.ok(pd and #pd == 3 and pd.height == 4, "open a PNG class folder")
T.is(table.concat(pd:classes(), ","), "cat,dog", "class names from the sub-folders")

-- failures return nil, message
T.fails("nothing-here", "open a missing path", aim.data.open, T.path("nothing-here"))
T.write(T.path("junk.bin"), "abc")
T.fails("junk.bin", "open a corrupt CIFAR batch", aim.data.open, T.path("junk.bin"))
T.raises("string expected", "open without a path raises", aim.data.open)
T.raises("did you mean 'limit'", "open with an unknown option raises", aim.data.open, root, {limt = 2})

-- Fashion-MNIST, when installed; nil, message otherwise (never a raise)
local fm, err = aim.data.fashion_mnist("test", {limit = 20, size = 14})
if fm then
    T.ok(#fm == 20 and fm.height == 14 and fm.channels == 1, "Fashion-MNIST test split, limited and resized")
    T.is(fm:classes()[1], "T-shirt/top", "Fashion-MNIST class names")
else
    -- only "not installed" may lead here; a broken installation is a failure
    T.ok(type(err) == "string" and err:find("Fashion-MNIST not found in", 1, true)
             and err:find("AIM_FASHION_MNIST", 1, true),
         "Fashion-MNIST is not installed, and the message says where it looked and what to do",
         err)
    T.skip("Fashion-MNIST class names: the dataset is not installed")
end
T.raises("invalid option 'val'", "a bad split raises", aim.data.fashion_mnist, "val")

-- closing
local closed
do
    local d <close> = aim.data.synthetic{n = 2, size = 8}
    closed = d
end
T.ok(tostring(closed):find("closed"), "a closed dataset says so")
T.raises("closed", "using a closed dataset raises", function() return #closed end)

T.done()
