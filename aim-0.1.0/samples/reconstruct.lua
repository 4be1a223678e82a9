-- reconstruct.lua - what the model predicts: a PNG grid with one test image
-- per row, input (the first S patches) | next-patch prediction | target.
-- Each patch is predicted from the patches before it; predictions are shown
-- in pixels (un-normalised with the target patch's mean/std).
--
--   aim run samples/reconstruct.lua [weights=FILE.safetensors] [steps=200]
--       [n=8] [prefix=0] [size=28] [png=reconstruct.png] [seed=0]
-- Without weights a `tiny` model is first trained for `steps` steps (on
-- Fashion-MNIST, or the synthetic set when it is missing). prefix=0 means
-- half of the patches.
local aim = require "aim"

local a = aim.args(arg, {weights = "", steps = 200, batch = 64, n = 8, prefix = 0, size = 0,
                         width = 0, depth = 0, heads = 0, png = "reconstruct.png", seed = 0})

local m, err
if a.weights ~= "" then
    m, err = aim.load(a.weights)
    if not m then error(err, 0) end
else
    local cfg = aim.preset "tiny"
    if a.size > 0 then cfg.image = a.size end
    if a.width > 0 then cfg.width = a.width end
    if a.depth > 0 then cfg.depth = a.depth end
    if a.heads > 0 then cfg.heads = a.heads end
    cfg.seed = a.seed
    m = aim.model(cfg)
end
local cfg = m:config()
print("model: " .. tostring(m))

if a.weights == "" then
    local train = aim.data.default("train", {channels = cfg.channels, size = cfg.image,
                                             limit = a.steps * a.batch, seed = a.seed})
    aim.pretrain(m, train, {steps = a.steps, batch = a.batch, seed = a.seed})
end

local test = aim.data.default("test", {channels = cfg.channels, size = cfg.image, limit = a.n,
                                       seed = a.seed})
local x = test:batch(1, a.n)
local r = aim.reconstruct(m, x, {prefix = a.prefix > 0 and a.prefix or nil, png = a.png})
print(string.format("prefix %d of %d patches, loss %.4f", r.prefix,
                    (cfg.image // cfg.patch) ^ 2 // 1, r.loss))
print("wrote " .. r.png .. " (rows: input | prediction | target)")
