-- jobs.lua - aim.pretrain (result, run folder, on_step / every, stopping,
-- lr changes, errors in callbacks, option checking), the job controls in a
-- headless run, aim.reconstruct (tensors, the PNG grid, the inverse of the
-- per-patch normalisation), aim.threads and aim.clock.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"

local ds = aim.data.synthetic{n = 64, channels = 3, size = 8}
local m = aim.model{preset = "micro", seed = 1}
local x = ds:batch(1, 16)
local before = m:loss(x, {prefix = 1})

-- a run with a folder and a callback
local seen, losses = {}, {}
local out = T.path("run")
local r = aim.pretrain(m, ds, {steps = 30, batch = 8, lr = 3e-3, out = out, every = 10,
                               on_step = function(info)
                                   seen[#seen + 1] = info.step
                                   losses[#losses + 1] = info.loss
                               end})
T.ok(r and r.steps == 30 and r.total == 30 and r.stopped == false, "pretrain returns a result: " .. aim.format(r))
T.ok(r.images == 240 and r.epochs == 240 / 64 and r.seconds > 0 and r.img_per_s > 0, "... with images, epochs, time")
T.is(table.concat(seen, ","), "10,20,30", "on_step runs every 10 steps")
local after = m:loss(x, {prefix = 1})
T.ok(after < before, string.format("training lowers the loss: %.4f -> %.4f", before, after))
T.ok(T.exists(out .. "/run.json") and T.exists(out .. "/model.safetensors"), "the run folder has run.json and the weights")
local lines = 0
for line in io.lines(out .. "/metrics.jsonl") do
    if line:find('"kind":"train"', 1, true) and line:find('"run":"run"', 1, true) then lines = lines + 1 end
end
T.is(lines, 30, "metrics.jsonl: one JSON line per step")
local saved = aim.load(r.weights)
T.ok(saved and saved:loss(x, {prefix = 1}) == after, "the saved weights are the trained model")
T.is(#m:config().mean, 3, "the dataset's mean/std are recorded in the model")

-- epochs, log_every and the other flags
local r2 = aim.pretrain(aim.model "micro", ds, {epochs = 1, batch = 16, warmup = 1, wd = 0, clip = 0,
                                                 seed = 4, crop = false, flip = false, scale_min = 0.5, shift = 1,
                                                 log_every = 2, out = T.path("run2"), run = "named"})
T.is(r2.steps, 4, "epochs = 1 with 64 images in batches of 16 is 4 steps")
local l2 = 0
for line in io.lines(T.path("run2/metrics.jsonl")) do
    if line:find('"run":"named"', 1, true) then l2 = l2 + 1 end
end
T.is(l2, 2, "log_every = 2 and run = \"named\" shape the metrics")
T.ok((T.read(T.path("run2/run.json")) or ""):find('"flip":0,"scale_min":0.5,"shift":1}', 1, true),
     "run.json records flip, scale_min and shift")
local r3 = aim.pretrain(aim.model "micro", ds, {batch = 32})
T.is(r3.steps, 10, "the default is the default experiment's 5 epochs (64 images, batch 32)")

-- stopping and lr from inside a job
local rs = aim.pretrain(aim.model "micro", ds, {steps = 100, batch = 4,
                                                on_step = function(i) if i.step == 5 then return "stop" end end})
T.ok(rs.stopped and rs.steps == 5, "on_step returning \"stop\" ends the job at step 5")
local rst = aim.pretrain(aim.model "micro", ds, {steps = 100, batch = 4,
                                                 on_step = function(i) if i.step == 3 then stop() end end})
T.ok(rst.stopped and rst.steps == 3, "stop() ends the job")
local lrs = {}
local rl = aim.pretrain(aim.model "micro", ds, {steps = 10, batch = 4, warmup = 0, on_step = function(i)
    lrs[i.step] = i.lr
    if i.step == 4 then
        local now, peak = lr()
        T.ok(now == i.lr and math.abs(peak - 1e-3) < 1e-9, "lr() inside a job: current and peak")
        lr(1e-5)
    end
end})
T.ok(lrs[4] > 1e-4 and lrs[5] <= 1e-5 and math.abs(rl.lr - 1e-5) < 1e-12,
     string.format("lr(1e-5) applies from the next step (%.2e -> %.2e)", lrs[4], lrs[5]))
T.raises("nothing could resume", "pause() in a headless run raises", aim.pretrain, aim.model "micro", ds,
         {steps = 3, batch = 4, on_step = function() pause() end})
T.is(pause(), false, "pause() without a job returns false")
T.is(resume(), false, "resume() without a job returns false")
T.is(stop(), false, "stop() without a job returns false")
T.is(lr(), nil, "lr() without a job returns nothing")

-- an error in on_step stops the job and is raised once it has cleaned up
local me = aim.model "micro"
T.raises("bad callback", "an error in on_step is raised", aim.pretrain, me, ds,
         {steps = 10, batch = 4, on_step = function(i) if i.step == 2 then error("bad callback") end end})
T.ok(me:loss(x) > 0, "the model is usable afterwards")
T.is(aim.pretrain(me, ds, {steps = 2, batch = 4}).steps, 2, "and can train again")
T.raises("in use by a running job", "closing the model inside its job raises", aim.pretrain, me, ds,
         {steps = 3, batch = 4, on_step = function() me:close() end})
T.raises("already running", "jobs do not nest", aim.pretrain, me, ds,
         {steps = 3, batch = 4, on_step = function() aim.pretrain(me, ds, {steps = 1}) end})

-- option checking
T.raises("did you mean 'lr'", "an unknown option raises", aim.pretrain, me, ds, {lrr = 1})
-- resume: a run stopped at step 10 and resumed into a fresh model ends
-- exactly where an uninterrupted one does
do
    local ra, rb = T.path("resA"), T.path("resB")
    local a = aim.model{preset = "micro", seed = 1}
    aim.pretrain(a, ds, {steps = 20, batch = 8, out = ra, ckpt_every = 10})
    local b = aim.model{preset = "micro", seed = 1}
    aim.pretrain(b, ds, {steps = 20, batch = 8, out = rb, ckpt_every = 10,
                         on_step = function(i) if i.step == 10 then return "stop" end end})
    local xb = ds:batch(1, 8)
    T.ok(b:loss(xb, {prefix = 3}) ~= a:loss(xb, {prefix = 3}), "the stopped run is not done")
    local c = aim.model{preset = "micro", seed = 99}
    local rc = aim.pretrain(c, ds, {resume = rb})
    T.ok(rc.steps == 20 and c:loss(xb, {prefix = 3}) == a:loss(xb, {prefix = 3}),
         "resume = RUN continues exactly: the same loss as the uninterrupted run")
    T.ok(T.exists(rb .. "/ckpt-20.safetensors"), "... keeping the run's checkpoint schedule")
    local ok, err = aim.pretrain(aim.model "micro", ds, {resume = T.path("nothing-here")})
    T.ok(ok == nil and err:find("nothing-here", 1, true), "resume from a missing run: nil, message: " .. tostring(err))
    T.raises("not this one", "resume into a model of another shape raises",
             function() return assert(aim.pretrain(aim.model{preset = "micro", width = 32}, ds, {resume = rb})) end)
end
T.raises("'on_nan' must be", "on_nan other than skip/stop raises", aim.pretrain, me, ds,
         {steps = 1, batch = 4, on_nan = "ignore"})
local rn = aim.pretrain(aim.model "micro", ds, {steps = 2, batch = 4, on_nan = "stop"})
T.ok(rn.steps == 2 and not rn.stopped, "on_nan = \"stop\" runs a finite job to its end")
T.raises("option 'steps' must be in", "steps = -1 raises", aim.pretrain, me, ds, {steps = -1})
T.raises("option 'shift' must be in", "shift = -1 raises", aim.pretrain, me, ds, {shift = -1})
local rsh, msh = aim.pretrain(me, ds, {shift = 8})
T.ok(rsh == nil and tostring(msh):find("shift 8 must be in [0, 8) for the 8x8 images", 1, true),
     "a shift as large as the image fails with a message: " .. tostring(msh))
T.is(aim.pretrain(me, ds, {steps = 1, epochs = 3, batch = 4}).steps, 1, "steps, when given, wins over epochs")
T.raises("option 'on_step' must be a function", "a non-function on_step raises", aim.pretrain, me, ds, {on_step = 3})
T.raises("option 'crop' must be true or false", "a non-boolean flag raises", aim.pretrain, me, ds, {crop = 1})
T.raises("ds:convert", "data of the wrong size raises", aim.pretrain, me, aim.data.synthetic{n = 4, size = 16})
T.raises("aim.dataset expected", "a missing dataset raises", aim.pretrain, me)
T.write(T.path("file"), "x")
T.fails("file", "an out folder that cannot be made", aim.pretrain, me, ds, {steps = 1, out = T.path("file/run")})

-- reconstruct
local rc = aim.reconstruct(m, x, {prefix = 6, png = T.path("recon.png"), scale = 2})
T.ok(rc and rc.prefix == 6 and rc.png == T.path("recon.png") and rc.loss > 0, "reconstruct returns a result")
for _, k in ipairs{"input", "prediction", "target"} do
    T.ok(table.concat(rc[k]:shape(), ",") == "16,3,8,8" and rc[k]:min() >= 0 and rc[k]:max() <= 1,
         k .. " is [B,C,H,W] in [0,1]")
end
T.is(T.read(T.path("recon.png")):sub(1, 4), "\137PNG", "the PNG grid is written")
local st = m:config()
local want = x[1][2][1][1] * st.std[2] + st.mean[2]
T.near(rc.target:get(1, 2, 1, 1), math.max(0, math.min(1, want)), 1e-5, "target = the image with the channel normalisation undone")
-- patch 6 (0-based) is row 1, col 2 of the 4x4 grid: pixels (3..4, 5..6)
T.is(rc.input:get(1, 1, 3, 5), 0.5, "input: patches >= S are grey")
T.is(rc.input:get(1, 1, 1, 1), rc.target:get(1, 1, 1, 1), "input: patches < S are the image")
T.is(rc.prediction:get(1, 1, 1, 1), rc.target:get(1, 1, 1, 1), "prediction: patches < S are the image")
-- the prediction of patch 6 with the target patch's own statistics
local p = m:predict(x, {prefix = 6})
local vals = {}
for py = 0, 1 do for px = 0, 1 do for c = 1, 3 do
    vals[#vals + 1] = x:get(1, c, 3 + py, 5 + px)
end end end
local mu, var = 0, 0
for _, v in ipairs(vals) do mu = mu + v / 12 end
for _, v in ipairs(vals) do var = var + (v - mu) ^ 2 / 11 end
local k = (0 * 2 + 1) * 3 + 2 -- (py=0, px=1, c=2), 1-based in (py, px, c) order
local pix = (p:get(1, 6, k) * math.sqrt(var + 1e-6) + mu) * st.std[2] + st.mean[2]
T.near(rc.prediction:get(1, 2, 3, 6), math.max(0, math.min(1, pix)), 1e-4,
       "prediction: un-normalised with the target patch's mean/std, then the channel's")
T.is(aim.reconstruct(m, x).prefix, 8, "the default prefix is N/2")
local plain = aim.reconstruct(aim.model "micro", x, {mean = {0, 0, 0}, std = {1, 1, 1}})
T.near(plain.target:get(2, 1, 2, 2), math.max(0, math.min(1, x:get(2, 1, 2, 2))), 1e-6, "opts.mean/std override")
T.raises("option 'prefix' must be in 1..15", "prefix N raises", aim.reconstruct, m, x, {prefix = 16})
T.raises("expected images", "images of the wrong shape raise", aim.reconstruct, m, aim.tensor.zeros(1, 1, 8, 8))
T.raises("1 or 3 channels", "a PNG of 4 channels raises",
         aim.reconstruct, aim.model{preset = "micro", channels = 4}, aim.tensor.zeros(1, 4, 8, 8), {png = T.path("x.png")})
T.fails("no/such", "a PNG into a missing folder", aim.reconstruct, m, x, {png = T.path("no/such/r.png")})

-- threads and clock
local n = aim.threads()
T.ok(math.type(n) == "integer" and n >= 1, "aim.threads() = " .. n)
T.is(aim.threads(1), 1, "aim.threads(1)")
aim.threads(n)
T.raises("thread count", "aim.threads(0) raises", aim.threads, 0)
local t0 = aim.clock()
T.ok(aim.clock() >= t0, "aim.clock() is monotonic")

T.done()
