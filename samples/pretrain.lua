-- pretrain.lua - pretrain an AIM model (the `tiny` preset by default) on
-- Fashion-MNIST, or on the synthetic set with a notice when the Debian
-- package dataset-fashion-mnist is missing. Prints the test loss before and
-- after, and leaves a run folder (run.json, metrics.jsonl, model.safetensors,
-- checkpoints). This is the experiment `aim` with no arguments shows in the
-- TUI: while it trains, the validation loss (every val_every steps), a live
-- linear probe of every block (every probe_every steps) and reconstructions
-- of a few test images (every recon_every steps) go to the screen's panels.
--
--   aim run samples/pretrain.lua [steps=N | epochs=5] [batch=64] [lr=1e-3]
--       [preset=tiny] [size=30 for tiny, else the preset's]
--       [patch=6 for tiny, else the preset's] [width=..]
--       [depth=..] [heads=..] [limit=N] [seed=0] [crop=0]
--       [out=DIR] [resume=RUN]
--       [val_every=100] [probe_every=300] [recon_every=50] [ckpt_minutes=10]
-- crop=1 adds AIM's random resized crops (scale 0.4-1) to the flips: on
-- Fashion-MNIST's centred objects they cost the probe 0.6 points (README).
-- size changes the image side (the patch must divide it); limit uses only the
-- first N training images; steps=0 means `epochs` epochs; 0 turns the
-- validation, the probe, the periodic reconstructions or checkpoints off.
-- resume=RUN continues a stopped run exactly (give the same shape arguments:
-- size, patch, width, depth, heads).
local aim = require "aim"

local a = aim.args(arg, {steps = 0, epochs = 5.0, batch = 64, lr = 1e-3, preset = "tiny",
                         size = 0, patch = 0, width = 0, depth = 0, heads = 0, limit = 0, seed = 0, out = "",
                         resume = "", crop = 0,
                         test = 1000, val_every = 100, probe_every = 300, recon_every = 50,
                         ckpt_minutes = 10.0})

local cfg = aim.preset(a.preset)
if a.size > 0 then cfg.image = a.size end
-- the default experiment: `tiny` on the images resized to 30x30 with patch 6
-- (a 5x5 grid, 25 tokens: half as cheap per image as the preset's patch 4 on
-- 28x28), 5 epochs (300 000 images) in about 25 minutes on 2 cores. Its probe
-- beat patch 7 on 28x28 (16 tokens, 6 epochs in 16 minutes) by 0.8 points
-- (README). patch=N alone keeps 28x28.
if a.patch > 0 then
    cfg.patch = a.patch
elseif a.preset == "tiny" and a.size == 0 then
    cfg.image, cfg.patch = 30, 6
end
if a.width > 0 then cfg.width = a.width end
if a.depth > 0 then cfg.depth = a.depth end
if a.heads > 0 then cfg.heads = a.heads end
cfg.seed = a.seed
local m = aim.model(cfg)

local shape = {channels = cfg.channels, size = cfg.image, seed = a.seed}
local train = aim.data.default("train", {channels = shape.channels, size = shape.size,
                                         limit = a.limit > 0 and a.limit or nil, seed = a.seed})
local test = aim.data.default("test", {channels = shape.channels, size = shape.size,
                                       limit = a.test, seed = a.seed})
print(string.format("model: %s\ndata:  %s\ntest:  %s", tostring(m), tostring(train), tostring(test)))

-- the test loss on (at most) the first 256 test images, every image with its
-- own prefix, drawn once (fixed); the whole test set serves validation, the
-- live probe and the reconstructions
local N = (cfg.image // cfg.patch) ^ 2 // 1
local x = test:batch(1, math.min(#test, 256))
local prefixes = {}
for i = 1, #x do prefixes[i] = 1 + (i * 7919) % (N - 1) end
local function test_loss()
    -- the model normalises with the training set's statistics (recorded by
    -- aim.pretrain); test:batch uses the test set's, which are close
    return m:loss(x, {prefix = prefixes})
end

local before = test_loss()
local out = a.out ~= "" and a.out or aim.run_dir("pretrain-" .. a.preset)
local opts = {batch = a.batch, lr = a.lr, seed = a.seed, out = out, crop = a.crop ~= 0,
              val = a.val_every > 0 and test or nil, val_every = a.val_every,
              probe_test = test, probe_every = a.probe_every,
              recon = test, recon_every = a.recon_every,
              ckpt_minutes = a.ckpt_minutes, checkpoints = true}
if a.steps > 0 then opts.steps = a.steps else opts.epochs = a.epochs end
if a.resume ~= "" then -- continue a stopped run exactly (its recipe wins)
    opts.resume, opts.steps, opts.epochs = a.resume, nil, nil
    opts.out = a.out ~= "" and a.out or a.resume
end
local r = aim.pretrain(m, train, opts)
local after = test_loss()

aim.print_table({
    {what = "test loss (before)", value = before},
    {what = "test loss (after)", value = after},
    {what = "train loss (mean of last steps)", value = r.mean_loss},
    {what = "steps", value = r.steps},
    {what = "images / s", value = r.img_per_s},
    {what = "minutes", value = r.seconds / 60},
}, {{"what", "result"}, {"value", "value", function(v)
    return math.type(v) == "integer" and tostring(v) or string.format("%.4f", v)
end}})
print("weights: " .. r.weights)
