-- probe_layers.lua - where are the best features? The paper's finding, at
-- small scale: an attentive probe on every trunk block of a pretrained model
-- (or of a short pretraining run made here), next to two baselines measured
-- the same way: the same trunk at random init, and raw pixels.
--
--   aim run samples/probe_layers.lua [weights=FILE] [steps=300] [kind=attentive]
--       [epochs=15] [lr=1e-2] [train=0 (all)] [test=0 (all)] [window=1] [seed=0]
local aim = require "aim"

local a = aim.args(arg, {weights = "", steps = 300, kind = "attentive", epochs = 15, lr = 1e-2,
                         batch = 256, train = 0, test = 0, window = 1, seed = 0,
                         baselines = true})

local m
if a.weights ~= "" then
    m = assert(aim.load(a.weights))
else
    m = aim.model{preset = "tiny", seed = a.seed}
end
local cfg = m:config()
local shape = {channels = cfg.channels, size = cfg.image, seed = a.seed}
local train = aim.data.default("train", {channels = shape.channels, size = shape.size,
                                         limit = a.train > 0 and a.train or nil, seed = a.seed})
local test = aim.data.default("test", {channels = shape.channels, size = shape.size,
                                       limit = a.test > 0 and a.test or nil, seed = a.seed})
if a.weights == "" then
    print(string.format("pretraining %s for %d steps first (give weights=FILE to skip)", tostring(m), a.steps))
    aim.pretrain(m, train, {steps = a.steps, batch = 64, seed = a.seed})
end

local opts = {sweep = true, window = a.window, kind = a.kind, epochs = a.epochs, lr = a.lr,
              batch = a.batch, seed = a.seed,
              on_set = function(s) print(string.format("  blocks %-6s %6.2f%%", s.label, s.test_top1)) end}
print("probing every block of the trunk:")
local r = aim.probe(m, train, test, opts)
local rows = {}
for _, s in ipairs(r.sets) do
    rows[#rows + 1] = {what = "blocks " .. s.label, top1 = s.test_top1}
end
local best = r.best
if a.baselines then
    print("baselines:")
    local rnd = aim.model{image = cfg.image, channels = cfg.channels, patch = cfg.patch, width = cfg.width,
                          depth = cfg.depth, heads = cfg.heads, head_width = cfg.head_width,
                          head_depth = cfg.head_depth, seed = a.seed + 1}
    opts.sweep, opts.blocks = nil, best.blocks
    local rr = aim.probe(rnd, train, test, opts)
    rows[#rows + 1] = {what = "random-init trunk, blocks " .. best.label, top1 = rr.best.test_top1}
    local px = aim.probe(nil, train, test, {raw = true, epochs = a.epochs, lr = a.lr, batch = a.batch,
                                            seed = a.seed})
    rows[#rows + 1] = {what = "raw pixels, linear", top1 = px.best.test_top1}
end
for _, row in ipairs(rows) do
    row.best = (row.what == "blocks " .. best.label) and "<- best" or ""
end
aim.print_table(rows, {{"what", "features"}, {"top1", "test top-1 %", function(v) return string.format("%.2f", v) end},
                       {"best", ""}})
