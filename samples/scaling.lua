-- scaling.lua - the paper's first finding in miniature: models of several
-- trunk widths, each trained on the same number of images, and their final
-- loss against the number of parameters, printed as a table. Wider models
-- should reach a lower loss.
--
--   aim run samples/scaling.lua [widths=64,128,192] [images=20000] [batch=64]
--       [depth=6] [size=28] [test=512] [seed=0] [out=DIR] [ckpt_every=0]
-- Heads: width/64 (at least 1). size changes the image side. out=DIR makes
-- each width a run folder, DIR/wWIDTH (run.json, metrics, the validation
-- loss on the test images), keeping a checkpoint every ckpt_every steps
-- (default: 8 along the run): samples/loss_vs_probe.lua
-- run=DIR/w64,DIR/w128,DIR/w192 then plots probe top-1 against loss for
-- the three widths.
local aim = require "aim"

local a = aim.args(arg, {widths = "64,128,192", images = 20000, batch = 64, depth = 6,
                         size = 0, test = 512, seed = 0, lr = 1e-3, out = "", ckpt_every = 0})

local base = aim.preset "tiny"
if a.size > 0 then base.image = a.size end
local train = aim.data.default("train", {channels = base.channels, size = base.image,
                                         limit = a.images, seed = a.seed})
local test = aim.data.default("test", {channels = base.channels, size = base.image,
                                       limit = a.test, seed = a.seed})
local x = test:batch(1, #test)
local N = (base.image // base.patch) ^ 2 // 1
local prefixes = {}
for i = 1, #x do prefixes[i] = 1 + (i * 7919) % (N - 1) end
local steps = math.max(1, math.ceil(a.images / a.batch))

local rows = {}
for w in a.widths:gmatch("%d+") do
    local cfg = aim.preset "tiny"
    cfg.image = base.image
    cfg.width = math.tointeger(tonumber(w))
    cfg.depth = a.depth
    cfg.heads = math.max(1, cfg.width // 64)
    while cfg.width % cfg.heads ~= 0 do cfg.heads = cfg.heads - 1 end
    cfg.seed = a.seed
    local m = aim.model(cfg)
    local trunk, head = m:nparams()
    io.stderr:write(string.format("width %d: %d trunk parameters, %d steps\n", cfg.width, trunk, steps))
    local opts = {steps = steps, batch = a.batch, lr = a.lr, seed = a.seed}
    if a.out ~= "" then
        local every = a.ckpt_every > 0 and a.ckpt_every or math.max(1, steps // 8)
        opts.out, opts.val, opts.ckpt_every, opts.keep = a.out .. "/w" .. cfg.width, test, every, 0
        opts.ckpt_minutes, opts.val_every = 0, every
    end
    local r = aim.pretrain(m, train, opts)
    rows[#rows + 1] = {width = cfg.width, heads = cfg.heads, params = trunk, head = head,
                       train = r.mean_loss, test = m:loss(x, {prefix = prefixes}),
                       minutes = r.seconds / 60}
end

print(string.format("%d images each (%d steps of %d), depth %d, %dx%d images", steps * a.batch,
                    steps, a.batch, a.depth, base.image, base.image))
aim.print_table(rows, {{"width", "width"}, {"heads", "heads"}, {"params", "trunk params"},
                       {"train", "train loss", "%.4f"}, {"test", "test loss", "%.4f"},
                       {"minutes", "minutes", "%.1f"}})
