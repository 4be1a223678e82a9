-- model.lua - aim.model, aim.load, aim.preset and the model methods: config
-- round trips, the parameter table, loss / predict (checked against a
-- reference computed here in Lua from AIM.md), features, chunking of large
-- batches, save / load, and the errors.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"

-- construction
local m = aim.model "micro"
T.ok(tostring(m):find("aim.model 3x8x8 patch 2, D=16 L=2", 1, true), "tostring: " .. tostring(m))
local cfg = m:config()
T.ok(cfg.image == 8 and cfg.channels == 3 and cfg.patch == 2 and cfg.width == 16 and cfg.depth == 2
     and cfg.heads == 2 and cfg.head_width == 8 and cfg.head_depth == 1, "config() of the micro preset")
T.is(aim.preset("tiny").width, 192, "aim.preset gives a preset's config")
T.is(table.concat(aim.presets, ","), "micro,tiny,small", "aim.presets")
local m2 = aim.model(cfg)
T.is(aim.format(m2:config()), aim.format(cfg), "aim.model(m:config()) has the same config")
local wide = aim.model{preset = "micro", width = 32, heads = 4, seed = 5}
T.ok(wide:config().width == 32 and wide:config().heads == 4, "fields override the preset")
local normed = aim.model{preset = "micro", mean = {0.1, 0.2, 0.3}, std = {0.5, 0.5, 0.5}}
T.near(normed:config().mean[2], 0.2, 1e-6, "mean/std go into the config")
T.raises("invalid option 'huge'", "an unknown preset raises", aim.model, "huge")
T.raises("did you mean 'width'", "an unknown field raises", aim.model, {preset = "micro", widht = 8})
T.raises("heads 3 does not divide width 16", "an invalid config raises", aim.model, {preset = "micro", heads = 3})
T.raises("both mean and std", "mean without std raises", aim.model, {preset = "micro", mean = {0, 0, 0}})
T.raises("3 numbers", "a mean of the wrong length raises", aim.model, {preset = "micro", mean = {0}, std = {1}})
T.raises("option 'depth' must be an integer", "a non-integer field raises", aim.model, {depth = 1.5})

-- parameters
local params = m:params()
T.is(params[1].name, "preprocessor.patchifier.proj.weight", "params() in table order, AIM.md names")
T.is(table.concat(params[1].shape, ","), "16,3,2,2", "... with PyTorch shapes")
T.ok(params[1].trainable == true and params[1].numel == 192, "... trainable, numel")
local trunk, head = m:nparams()
local total = 0
for _, p in ipairs(params) do total = total + p.numel end
T.is(total, trunk + head, "the parameters add up to nparams(): " .. trunk .. " + " .. head)
local w = m:param("trunk.blocks.1.attn.qkv.weight")
T.is(table.concat(w:shape(), ","), "48,16", "param(name) copies a tensor")
T.raises("no parameter named", "an unknown parameter raises", m.param, m, "nope")

-- loss and predict
local ds = aim.data.synthetic{n = 70, channels = 3, size = 8}
local x = ds:batch(1, 2)
local l = m:loss(x, {prefix = 5})
T.ok(type(l) == "number" and l > 0, "loss is a number: " .. l)
T.is(m:loss(x, {prefix = 5}), l, "loss is deterministic")

-- m:precision: fp32 by default; bf16 where it runs gives a loss within bf16's rounding
T.is(m:precision(), "fp32", "m:precision() is fp32 by default")
T.raises("precision must be fp32 or bf16", "m:precision with a bad name raises", m.precision, m, "fp16")
local p16, why = m:precision("bf16")
if p16 then
    local l16 = m:loss(x, {prefix = 5})
    T.ok(p16 == "bf16" and m:precision() == "bf16" and math.abs(l16 - l) <= 0.02 * l,
         string.format("m:precision('bf16'): the loss in bf16 %.6f, fp32 %.6f", l16, l))
    T.ok(m:precision("fp32") == "fp32" and m:loss(x, {prefix = 5}) == l,
         "m:precision('fp32') gives fp32's loss back bit for bit")
else
    T.ok(type(why) == "string" and why:find("precision") ~= nil and m:precision() == "fp32",
         "bf16 cannot run here: nil, the reason (" .. tostring(why) .. "), still fp32")
    T.skip("bf16 cannot run here: " .. tostring(why))
end
local pred, pl = m:predict(x, {prefix = 5})
T.is(table.concat(pred:shape(), ","), "2,16,12", "predict gives [B,N,P]")
T.near(pl, l, 1e-6, "predict also returns the loss")

-- the loss from the predictions and AIM.md's targets, computed here
local function reference_loss(img, p, S)
    local C, H, ps, N, P = 3, 8, 2, 16, 12
    local sum, count = 0, 0
    for b = 1, #img do
        for j = S, N - 1 do -- 0-based target patch j, predicted by row j-1
            local row, col = j // 4, j % 4
            local v = {}
            for py = 0, ps - 1 do
                for px = 0, ps - 1 do
                    for c = 0, C - 1 do
                        v[#v + 1] = img:get(b, c + 1, row * ps + py + 1, col * ps + px + 1)
                    end
                end
            end
            local mean, var = 0, 0
            for _, a in ipairs(v) do mean = mean + a / P end
            for _, a in ipairs(v) do var = var + (a - mean) ^ 2 / (P - 1) end
            local err = 0
            for k = 1, P do
                local t = (v[k] - mean) / math.sqrt(var + 1e-6)
                err = err + (p:get(b, j, k) - t) ^ 2 / P
            end
            sum, count = sum + err, count + 1
        end
    end
    return sum / count
end
T.near(reference_loss(x, pred, 5), l, 1e-5, "row i of predict predicts patch i+1 (loss recomputed in Lua)")
local lp = m:loss(x, {prefix = {3, 9}})
local _, l3 = m:predict(x:narrow(1, 1, 1), {prefix = 3})
local _, l9 = m:predict(x:narrow(1, 2, 1), {prefix = 9})
T.near(lp, (l3 * 13 + l9 * 7) / 20, 1e-5, "per-image prefixes: the mean over every image's targets")
T.raises("1..15", "prefix 0 raises", m.loss, m, x, {prefix = 0})
T.raises("1..15", "prefix N raises", m.loss, m, x, {prefix = 16})
T.raises("2 values", "a prefix table of the wrong length raises", m.loss, m, x, {prefix = {1}})
T.raises("expected images [B,3,8,8]", "images of the wrong shape raise", m.loss, m, aim.tensor.zeros(2, 1, 8, 8))
T.raises("did you mean 'prefix'", "an unknown option raises", m.loss, m, x, {prefx = 3})

-- batches larger than one chunk (64) give what the pieces give
local x70 = ds:batch(1, 70)
local l70 = m:loss(x70, {prefix = 4})
local la, lb = m:loss(x70:narrow(1, 1, 64), {prefix = 4}), m:loss(x70:narrow(1, 65, 6), {prefix = 4})
T.near(l70, (la * 64 + lb * 6) / 70, 1e-5, "70 images = 64 + 6 (chunked)")
local p70 = m:predict(x70, {prefix = 4})
local p6 = m:predict(x70:narrow(1, 65, 6), {prefix = 4})
T.near(p70[70]:sum(), p6[6]:sum(), 1e-3, "predictions of the second chunk land in place")

-- features
local f = m:features(x, {blocks = {1, 2}})
T.is(table.concat(f:shape(), ","), "2,16,16", "features gives [B,N,D]")
local f1, f2 = m:features(x, {blocks = {1}}), m:features(x, {blocks = {2}})
T.near(((f1 + f2) / 2 - f):max(), 0, 1e-5, "features of {1,2} = the average of the two blocks")
T.near((m:features(x) - f2):max(), 0, 0, "the default is the last block")
T.raises("numbered 1..2", "block 3 raises", m.features, m, x, {blocks = {3}})
T.raises("numbered 1..2", "block 0 raises", m.features, m, x, {blocks = {0}})
T.raises("table of block numbers", "blocks must be a table", m.features, m, x, {blocks = 1})

-- save / export / load
local path = T.path("m.safetensors")
T.is(m:save(path), true, "save")
T.is(m:export(T.path("e.safetensors")), true, "export")
local back = aim.load(path)
T.ok(back and back:loss(x, {prefix = 5}) == l, "load gives the same model")
T.is(aim.format(back:config()), aim.format(m:config()), "... and config")
T.fails("none.safetensors", "load of a missing file", aim.load, T.path("none.safetensors"))
x:save(T.path("x.npy"))
T.fails("x.npy", "load of something else", aim.load, T.path("x.npy"))
T.fails("no/such", "save into a missing folder", m.save, m, T.path("no/such/m.safetensors"))

-- the sgemm peak on the model's shapes (structure, not speed)
local pk = m:gemm_peak{batch = 2, seconds = 0.02}
local fl, tm = 0, 0
for _, r in ipairs(pk.rows) do
    local f = 2 * r.M * r.K * r.N * r.count
    fl, tm = fl + f, tm + f / r.gflops
end
T.ok(#pk.rows == 9 and pk.rows[2].name == "attn.qkv" and pk.rows[2].M == 2 * 16 and pk.rows[2].N == 48
     and pk.rows[2].count == 2, "gemm_peak: the model's GEMM shapes at batch 2")
T.ok(pk.gflops > 0 and pk.gflops < math.huge, "gemm_peak: a positive, finite peak")
T.near(fl / tm, pk.gflops, 1e-9 * pk.gflops, "gemm_peak: the rows' FLOP-weighted rate is the peak")
-- micro (N = 16 tokens, P = 12, D = 16, L = 2, Dh = 8, Lh = 1): a training
-- step's forward runs the trunk on 15 tokens (embedding 2*15*12*16 = 5760,
-- each block 2*15*12*16^2 + 4*15^2*16 = 106560), the last block's projection
-- and MLP on the 8 loss rows of the average image only (7 rows of
-- 2*9*16^2 = 4608 left out) and the head on those 8 rows (8 * 1472)
T.is(pk.train_flops, 3 * (5760 + 2 * 106560 - 7 * 4608 + 8 * 1472),
     "gemm_peak: training FLOPs per image (3x the loss-only forward)")
T.raises("did you mean 'batch'", "gemm_peak's options are checked", m.gemm_peak, m, {bacth = 2})

-- closing
local closed
do
    local c <close> = aim.model "micro"
    closed = c
end
T.ok(tostring(closed):find("closed"), "a closed model says so")
T.raises("closed", "using a closed model raises", closed.loss, closed, x)
T.raises("aim.model expected", "a method on something else raises", m.loss, ds, x)

-- hostile sizes (issue 24): nothing is allocated from a file's or a config's
-- claims before they are checked, and models and datasets are charged to
-- aim.memory_limit
local function st_bytes(meta, tensors, data)
    local h = '{"__metadata__":{'
    local first = true
    for k, v in pairs(meta) do
        h = h .. (first and "" or ",") .. string.format('"%s":"%s"', k, v)
        first = false
    end
    h = h .. "}" .. (tensors or "") .. "}"
    return string.pack("<I8", #h) .. h .. (data or "")
end
local huge = {image = 32, channels = 3, patch = 4, width = 16384, depth = 512, heads = 8,
              head_width = 64, head_depth = 1}
T.write(T.path("huge.safetensors"), st_bytes(huge))
T.fails("huge.safetensors: tensor \"preprocessor.patchifier.proj.weight\" is missing",
        "aim.load of metadata claiming width 16384, depth 512", aim.load,
        T.path("huge.safetensors"))
local pk = {image = 32, channels = 3, patch = 4, width = 16384, depth = 2, heads = 8,
            head_width = 64, head_depth = 1, classes = 100000, probe_layers = 1,
            probe_kind = "linear"}
T.write(T.path("probe.safetensors"), st_bytes(pk,
        ',"head.linear.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}', "\0\0\0\0"))
T.fails("[100000,16384]", "aim.load_probe of a head claiming 100000 x 16384", aim.load_probe,
        T.path("probe.safetensors"))
T.raises("the model needs", "aim.model{width = 16384, depth = 512} raises with its size",
         aim.model, {width = 16384, depth = 512, heads = 8, head_width = 64})
do
    collectgarbage()
    local limit, used = aim.memory_limit()
    aim.memory_limit(used + (16 << 20))
    T.raises("aim.memory_limit", "a model over aim.memory_limit raises", aim.model,
             {width = 512, depth = 8, heads = 8, head_width = 64})
    local mm = aim.model "micro"
    local _, with = aim.memory_limit()
    local t, h = mm:nparams()
    T.ok(with - used >= 8 * (t + h), string.format("a model is charged to aim.memory_limit: "
         .. "%d bytes for %d parameters", with - used, t + h))
    mm:close()
    local _, after = aim.memory_limit()
    T.ok(with - after >= 0.9 * 8 * (t + h),
         string.format("and given back when closed (%d bytes)", with - after))
    T.raises("aim.memory_limit", "a dataset over aim.memory_limit raises",
             aim.data.synthetic, {n = 100000, size = 28})
    aim.memory_limit(limit)
end

T.done()
