-- inspect.lua - what each block computed: a PNG grid with one test image
-- per row (one per class): the input, then for every block its PCA map (the
-- block's patch tokens projected on their first 3 principal components over
-- all the images' tokens, as red, green, blue), optionally the next-patch
-- error map and, when the weights hold an attentive probe (`aim probe
-- --save`), its attention (mean of the heads); and a table of per-block
-- statistics: mean token norm, mean cosine similarity between the tokens of
-- an image, effective rank, share of the variance on the first 3 components.
--
--   aim run samples/inspect.lua [weights=FILE.safetensors] [steps=200]
--       [n=8] [png=inspect.png] [scale=3] [error=false] [prefix=1] [seed=0]
-- Without weights a `tiny` model is first trained for `steps` steps. The
-- same maps are in the workbench: `aim tui --inspect FILE.safetensors`.
local aim = require "aim"
local inspector = require "aim.inspector"

local a = aim.args(arg, {weights = "", steps = 200, batch = 64, n = 8, png = "inspect.png",
                         scale = 3, error = false, prefix = 1, size = 0, width = 0, depth = 0,
                         heads = 0, seed = 0})

local m, err, probe
if a.weights ~= "" then
    m, err = aim.load(a.weights)
    if not m then error(err, 0) end
    probe = aim.load_probe(a.weights) -- nil without one
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

local test = aim.data.default("test", {channels = cfg.channels, size = cfg.image, seed = a.seed})
local x = inspector.pick(test, a.n)
local B, H, L = x:size(1), cfg.image, cfg.depth
local r = aim.inspect(m, x, {probe = probe, prefix = a.prefix, publish = false})

-- the grid: tiles [1,3,H,W] in row-major order, one image per row
local columns = {aim.maps.input(m, x)}
local names = {"input"}
for l = 1, L do
    columns[#columns + 1] = aim.maps.rgb(r.pca[l], {size = H})
    names[#names + 1] = "block " .. l
end
if a.error then
    columns[#columns + 1] = aim.maps.heat(r.error, {size = H})
    names[#names + 1] = string.format("error (S=%d)", r.prefix)
end
if r.attention then
    -- the mean over heads: [B,NH,N] -> [B,N]
    local nh, n = r.attention:size(2), r.attention:size(3)
    local mean = aim.tensor.zeros(B, n)
    for b = 1, B do
        for j = 1, n do
            local s = 0
            for h = 1, nh do s = s + r.attention:get(b, h, j) end
            mean:set(b, j, s / nh)
        end
    end
    columns[#columns + 1] = aim.maps.heat(mean, {size = H})
    names[#names + 1] = "probe attention"
end
local tiles = {}
for b = 1, B do
    for _, c in ipairs(columns) do tiles[#tiles + 1] = c[b]:reshape(1, 3, H, H) end
end
local ok, werr = aim.png.write(a.png, aim.tensor.cat(tiles), {cols = #columns, scale = a.scale})
if not ok then error(werr, 0) end

local rows = {}
for l, s in ipairs(r.stats) do
    local e = r.explained[l]
    rows[l] = {block = l, norm = s.norm, cosine = s.cosine, erank = s.erank,
               ["PC1-3 %"] = 100 * (e[1] + e[2] + e[3])}
end
aim.print_table(rows, {"block", "norm", "cosine", "erank", "PC1-3 %"})
print(string.format("next-patch loss at prefix %d: %.4f", r.prefix, r.loss))
print(string.format("wrote %s: %d images x (%s)", a.png, B, table.concat(names, " | ")))
