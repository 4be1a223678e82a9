-- inspect.lua - looking inside a trunk from Lua: m:pca (checked against the
-- features it is made of), m:stats (norm and cosine recomputed here),
-- m:patch_loss (its mean is the loss), probe objects (r.probe,
-- aim.load_probe, p:attention: rows of weights that sum to 1), aim.inspect
-- (the same numbers together), aim.maps (colours, sizes, NaN), PNG export,
-- and the errors of each.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"

local tr = aim.data.synthetic{n = 200, channels = 3, size = 8, seed = 1}
local te = aim.data.synthetic{n = 80, channels = 3, size = 8, seed = 2}
local m = aim.model{preset = "micro", seed = 3}
aim.pretrain(m, tr, {steps = 10, batch = 16})
local x = te:batch(1, 6)
local B, N, D = 6, 16, 16

local function maxdiff(a, b) -- largest |a - b| of two tensors of one shape
    local d = a - b
    return math.max(d:max(), -d:min())
end

-- ---------------------------------------------------------------- m:pca
local p, info = m:pca(x, {block = 1})
T.is(table.concat(p:shape(), "x"), "6x16x3", "m:pca gives [B,N,3]")
T.ok(info.block == 1 and #info.variance == 3 and info.variance[1] >= info.variance[2] and
     info.variance[2] >= info.variance[3] and info.variance[3] > 0,
     "the variances along the components, descending: " .. aim.format(info.variance))
local sum = info.explained[1] + info.explained[2] + info.explained[3]
T.ok(sum > 0 and sum <= 1 + 1e-6 and math.abs(info.explained[1] - info.variance[1] / info.total) < 1e-6,
     string.format("explained = variance / total (first 3: %.3f of the variance)", sum))
local f = m:features(x, {blocks = {1}}) -- [B,N,D]
local worst, unit = 0, 0
for j = 1, 3 do
    local len = 0
    for d = 1, D do len = len + info.components:get(j, d) ^ 2 end
    unit = math.max(unit, math.abs(len - 1))
end
for b = 1, B, 5 do
    for n = 1, N, 3 do
        for j = 1, 3 do
            local s = 0
            for d = 1, D do
                s = s + (f:get(b, n, d) - info.mean:get(d)) * info.components:get(j, d)
            end
            worst = math.max(worst, math.abs(s - p:get(b, n, j)))
        end
    end
end
T.ok(unit < 1e-5 and worst < 1e-4, string.format("the projections are (features - mean) . component " ..
     "(unit components %.1g, error %.1g)", unit, worst))
local var1 = 0
for b = 1, B do for n = 1, N do var1 = var1 + p:get(b, n, 1) ^ 2 end end
var1 = var1 / (B * N - 1)
T.near(var1, info.variance[1], 1e-4 * info.variance[1], "the first projection's variance is the first eigenvalue")
local _, last = m:pca(x)
T.is(last.block, 2, "block defaults to the last")
T.is(table.concat(m:pca(x, {k = 5}):shape(), "x"), "6x16x5", "k = 5 components")
T.raises("option 'block' must be in 1..2", "block beyond the depth", function() m:pca(x, {block = 3}) end)
T.raises("option 'k' must be in 1..16", "k beyond the width", function() m:pca(x, {k = 17}) end)
T.raises("unknown option 'blocks'", "an unknown option", function() m:pca(x, {blocks = {1}}) end)
T.raises("[B,3,8,8]", "images of the wrong shape", function() m:pca(aim.tensor.zeros(2, 1, 8, 8)) end)

-- ---------------------------------------------------------------- m:stats
local st = m:stats(x)
T.ok(#st == 2 and st[2].block == 2, "m:stats: one entry per block")
local norm, cos = 0, 0
for b = 1, B do
    local u, nz = {}, 0
    for d = 1, D do u[d] = 0 end
    for n = 1, N do
        local q = 0
        for d = 1, D do q = q + f:get(b, n, d) ^ 2 end
        q = math.sqrt(q)
        norm = norm + q
        for d = 1, D do u[d] = u[d] + f:get(b, n, d) / q end
    end
    local uu = 0
    for d = 1, D do uu = uu + u[d] ^ 2 end
    cos = cos + (uu - N) / (N * (N - 1))
end
T.near(st[1].norm, norm / (B * N), 1e-4, "block 1's mean token norm, recomputed from its features")
T.near(st[1].cosine, cos / B, 1e-5, "block 1's mean cosine between two tokens of an image, recomputed")
T.ok(st[1].erank >= 1 and st[1].erank <= N and st[2].erank >= 1,
     string.format("the effective ranks are in 1..%d (%.2f, %.2f)", N, st[1].erank, st[2].erank))

-- ---------------------------------------------------------------- m:patch_loss
local err, mean = m:patch_loss(x, {prefix = 5})
T.is(table.concat(err:shape(), "x"), "6x16", "m:patch_loss gives [B,N]")
local nan, defined = true, true
for b = 1, B do
    for j = 1, N do
        local v = err:get(b, j)
        if j <= 5 then nan = nan and v ~= v else defined = defined and v == v and v >= 0 end
    end
end
T.ok(nan and defined, "NaN for the 5 prefix patches (nothing predicts them), a loss for the others")
T.near(mean, m:loss(x, {prefix = 5}), 1e-5, "the mean of the map is m:loss")
local _, m2 = m:patch_loss(x, {prefix = {1, 2, 3, 4, 5, 6}})
T.near(m2, m:loss(x, {prefix = {1, 2, 3, 4, 5, 6}}), 1e-5, "per-image prefixes")
T.raises("prefix values must be in 1..15", "a prefix of N", function() m:patch_loss(x, {prefix = {16, 1, 1, 1, 1, 1}}) end)

-- ---------------------------------------------------------------- probes
local path = T.path("probed.safetensors")
local r = aim.probe(m, tr, te, {blocks = {1, 2}, epochs = 2, batch = 50, save = path})
T.ok(r.probe and tostring(r.probe):find("attentive probe on blocks 1,2", 1, true),
     "aim.probe's result carries the trained probe: " .. tostring(r.probe))
T.ok(r.probe:kind() == "attentive" and r.probe:classes() == 10 and
     table.concat(r.probe:blocks(), ",") == "1,2", "its kind, classes and blocks")
local a = r.probe:attention(m, x)
T.is(table.concat(a:shape(), "x"), "6x2x16", "p:attention(m, x) gives [B,heads,N]")
local rows = 0
for b = 1, B do
    for h = 1, 2 do rows = math.max(rows, math.abs(a[b][h]:sum() - 1)) end
end
T.ok(rows < 1e-5 and a:min() >= 0, string.format("each head's weights are >= 0 and sum to 1 (%.1g)", rows))
local lp = aim.load_probe(path)
T.ok(lp and maxdiff(lp:attention(m, x), a) == 0, "aim.load_probe reads it back: the same attention")
local bare = T.path("bare.safetensors")
m:save(bare)
T.fails("no probe in this file", "aim.load_probe of weights without a probe", aim.load_probe, bare)
T.fails("nosuch.safetensors", "aim.load_probe of a missing file", aim.load_probe, T.path("nosuch.safetensors"))
do -- a loaded probe is charged to aim.memory_limit
    collectgarbage()
    local limit, used = aim.memory_limit()
    aim.memory_limit(math.max(used + 1024, 1 << 20))
    local _, before = aim.memory_limit()
    local lp2, msg = aim.load_probe(path)
    if lp2 then -- the 1 MiB floor left room: the charge must show
        local _, with = aim.memory_limit()
        T.ok(with - before >= 8 * 16 * 16, "aim.load_probe is charged: " .. (with - before))
        lp2:close()
    else
        T.ok(msg:find("the probe needs", 1, true), "aim.load_probe over the limit: " .. msg)
    end
    aim.memory_limit(limit)
end
local rl = aim.probe(m, tr, te, {blocks = {2}, kind = "linear", epochs = 1, batch = 50})
T.raises("a linear probe has no attention", "a linear probe's attention", function() rl.probe:attention(m, x) end)
local other = aim.model{preset = "micro", patch = 4}
T.raises("the probe takes 16 tokens", "a probe on a model of another size", function()
    r.probe:attention(other, x) end)
T.ok(aim.probe(nil, tr, te, {raw = true, epochs = 1, batch = 50}).probe == nil,
     "the raw-pixel baseline has no probe object (no blocks to read)")
lp:close()
T.raises("the probe is closed", "a closed probe", function() lp:attention(m, x) end)

-- ---------------------------------------------------------------- aim.inspect
local ins = aim.inspect(m, x, {probe = r})
T.is(table.concat(ins.pca:shape(), "x"), "2x6x16x3", "aim.inspect: pca [L,B,N,3]")
T.ok(maxdiff(ins.pca[1], p) < 1e-5 and math.abs(ins.explained[1][1] - info.explained[1]) < 1e-6,
     "ins.pca[1] is m:pca(x, {block = 1}) and its explained variance")
T.ok(math.abs(ins.stats[2].erank - st[2].erank) < 1e-6 and math.abs(ins.stats[1].cosine - st[1].cosine) < 1e-9,
     "ins.stats is m:stats(x)")
local e1, l1 = m:patch_loss(x)
T.ok(ins.prefix == 1 and math.abs(ins.loss - l1) < 1e-6 and
     maxdiff(ins.error:narrow(2, 2, 15), e1:narrow(2, 2, 15)) == 0,
     "ins.error is m:patch_loss(x) at prefix 1, ins.loss its mean")
T.ok(maxdiff(ins.attention, a) == 0, "ins.attention is the probe's attention")
T.ok(ins.published == true and ins.grid == 4, "the first 8 images are published for the Inspect view")
T.ok(aim.inspect(m, x, {probe = r.probe, prefix = 3, publish = false}).published == false,
     "publish = false; a probe object instead of a result")
T.ok(aim.inspect(m, x).attention == nil, "no probe: no attention")
T.raises("a linear probe has no attention maps", "a linear probe", function() aim.inspect(m, x, {probe = rl}) end)
T.raises("this table has no probe", "a table that is not a probe result", function() aim.inspect(m, x, {probe = {}}) end)
T.raises("unknown option 'prob'", "an unknown option", function() aim.inspect(m, x, {prob = r}) end)
local big = aim.model{preset = "micro", image = 40}
local ib = aim.inspect(big, aim.tensor.zeros(1, 3, 40, 40))
T.ok(ib.published == false and tostring(ib.note):find("20x20 patches", 1, true),
     "a 20x20 grid is computed but not published: " .. tostring(ib.note))

-- ---------------------------------------------------------------- aim.maps
local rgb = aim.maps.rgb(ins.pca[2])
T.is(table.concat(rgb:shape(), "x"), "6x3x4x4", "aim.maps.rgb: [B,3,grid,grid]")
T.ok(rgb:min() == 0 and rgb:max() == 1, "each component spans 0..1 over the batch")
local big8 = aim.maps.rgb(ins.pca[2], {size = 8})
T.ok(big8:get(2, 1, 1, 1) == big8:get(2, 1, 2, 2) and big8:get(2, 1, 1, 1) == rgb:get(2, 1, 1, 1) and
     big8:get(2, 3, 8, 7) == rgb:get(2, 3, 4, 4), "size = 8: each patch a 2x2 square")
local heat = aim.maps.heat(ins.error)
T.ok(math.abs(heat:get(1, 1, 1, 1) - 128 / 255) < 1e-6 and math.abs(heat:get(1, 3, 1, 1) - 128 / 255) < 1e-6,
     "aim.maps.heat: patch 0 (no prediction, NaN) is grey")
T.ok(heat:max() <= 1 and heat:min() >= 0, "heat values are colours in 0..1")
T.is(table.concat(aim.maps.heat(ins.attention):shape(), "x"), "12x3x4x4", "heat maps of [B,heads,N]: one per image and head")
local fixed = aim.maps.heat(aim.tensor{{0, 1, 2, 4}}, {max = 8})
T.ok(math.abs(fixed:get(1, 1, 1, 1) - 0) < 1e-6 and math.abs(fixed:get(1, 3, 1, 1) - 4 / 255) < 1e-6,
     "heat with max = 8: 0 is inferno's black")
T.raises("5 patches do not make a square map", "a map that is not square", function() aim.maps.heat(aim.tensor.zeros(5)) end)
T.raises("expected projections", "rgb of a 1-d tensor", function() aim.maps.rgb(aim.tensor.zeros(4)) end)
local inp = aim.maps.input(m, x)
T.ok(table.concat(inp:shape(), "x") == "6x3x8x8" and inp:min() >= 0 and inp:max() <= 1,
     "aim.maps.input: the images in 0..1")
local png = T.path("pca.png")
T.ok(aim.png.write(png, aim.tensor.cat{inp, aim.maps.rgb(ins.pca[1], {size = 8}),
                                       aim.maps.heat(ins.error, {size = 8})}, {cols = 6, scale = 4}),
     "a grid of inputs, PCA maps and error maps written as a PNG")
local fh = io.open(png, "rb")
local sig = fh and fh:read(8)
if fh then fh:close() end
T.is(sig, "\137PNG\r\n\26\n", "... which is a PNG file")
T.done()
