-- probe.lua - aim.probe: a sweep streams one result per block, block lists,
-- the linear probe, the raw-pixel baseline, saving the best probe with the
-- trunk, callbacks (stop, errors), argument errors and run folders (out).
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"

local tr = aim.data.synthetic{n = 300, channels = 3, size = 8, seed = 1}
local te = aim.data.synthetic{n = 120, channels = 3, size = 8, seed = 2}
local m = aim.model{preset = "micro", seed = 1}
aim.pretrain(m, tr, {steps = 20, batch = 16})

local seen = {}
local r = aim.probe(m, tr, te, {sweep = true, epochs = 3, batch = 50,
                                on_set = function(s) seen[#seen + 1] = s.label end})
T.ok(r and #r.sets == 2 and r.kind == "attentive" and r.stopped == false, "a sweep probes every block: " .. aim.format(r.best))
T.is(table.concat(seen, " "), "1 2", "on_set sees each block as it finishes")
T.ok(r.best.test_top1 >= r.sets[1].test_top1 and r.best.test_top1 >= r.sets[2].test_top1, "best is the highest test top-1")
T.ok(r.sets[1].test_top1 > 10 and r.sets[1].test_top1 <= 100, string.format("top-1 beats chance (%.1f%%)", r.sets[1].test_top1))
T.is(r.sets[2].blocks[1], 2, "each set lists its blocks")

local epochs = 0
local r2 = aim.probe(m, tr, te, {blocks = {1, 2}, kind = "linear", epochs = 2, batch = 50,
                                 on_epoch = function(e) epochs = epochs + 1 end,
                                 save = T.path("probed.safetensors")})
T.ok(r2 and #r2.sets == 1 and r2.best.label == "1,2" and r2.kind == "linear", "blocks {1,2}, linear")
T.is(epochs, 2, "on_epoch runs every epoch")
-- without epochs: 30 for one block set, 15 per set in a sweep
local small = aim.data.synthetic{n = 60, channels = 3, size = 8, seed = 3}
local n1, n2 = 0, 0
aim.probe(m, small, small, {blocks = {1}, batch = 30, on_epoch = function() n1 = n1 + 1 end})
aim.probe(m, small, small, {sweep = true, batch = 30, on_epoch = function() n2 = n2 + 1 end})
T.ok(n1 == 30 and n2 == 30, string.format("default epochs: 30 for blocks = {1} (%d), 15 per block in a sweep (%d for 2)", n1, n2))
local loaded = aim.load(T.path("probed.safetensors"))
T.ok(loaded ~= nil, "the trunk saved with its probe loads as a model")

local raw = aim.probe(nil, tr, te, {raw = true, epochs = 2, batch = 50})
T.ok(raw and raw.kind == "raw-linear" and raw.best.label == "pixels", "raw-pixel baseline without a model")

local mir = aim.probe(m, tr, te, {blocks = {1}, mirror = true, epochs = 2, batch = 50})
T.ok(mir and mir.best.test_top1 > 10, string.format("mirror = true: the probe also trains on mirrored images (%.1f%%)", mir.best.test_top1))
T.raises("mirror needs a trunk", "mirror with raw pixels", function() aim.probe(nil, tr, te, {raw = true, mirror = true}) end)

local stopped = aim.probe(m, tr, te, {sweep = true, epochs = 1, batch = 50, on_set = function() return "stop" end})
T.ok(stopped.stopped and #stopped.sets == 1, "on_set returning \"stop\" ends the sweep")

T.raises("block 3 is not in 1..2", "a block beyond the depth", function() aim.probe(m, tr, te, {blocks = {3}}) end)
T.raises("option 'kind'", "an unknown kind", function() aim.probe(m, tr, te, {kind = "mlp"}) end)
T.raises("bogus", "an unknown option", function() aim.probe(m, tr, te, {bogus = 1}) end)
T.raises("a model is needed", "no model without raw", function() aim.probe(nil, tr, te) end)
T.raises("boom", "an error in on_set stops the job and is raised",
         function() aim.probe(m, tr, te, {epochs = 1, batch = 50, on_set = function() error("boom") end}) end)
local small = aim.data.synthetic{n = 20, channels = 1, size = 8}
T.raises("the data is 1x8x8", "data of the wrong shape", function() aim.probe(m, small, te) end)

-- out = DIR: a run folder as `aim probe --out`
local pout = T.path("runs/p")
local rp = aim.probe(m, tr, te, {sweep = true, epochs = 2, batch = 50, out = pout})
local log = T.read(pout .. "/metrics.jsonl") or ""
local _, nepochs = log:gsub('"kind":"probe_epoch"', "")
T.ok(rp and (T.read(pout .. "/run.json") or ""):find('"kind":"probe"', 1, true) and nepochs == 4
     and T.exists(pout .. "/events.out.tfevents.aim"),
     string.format("out = DIR: run.json, a probe_epoch line per epoch of each set (%d), the event file", nepochs))
local a1, a2 = log:match('"kind":"probe_result".-"top1":%[([%d.e+-]+),([%d.e+-]+)%]')
T.ok(a1 and math.abs(tonumber(a1) - rp.sets[1].test_top1) < 0.01 and math.abs(tonumber(a2) - rp.sets[2].test_top1) < 0.01,
     string.format("probe_result: top1 per block as the result has it (%s, %s)", a1, a2))
T.write(T.path("plain"), "x")
T.fails("cannot create", "an out folder that cannot be made", aim.probe, m, tr, te, {epochs = 1, batch = 50, out = T.path("plain/sub")})
T.raises("option 'out'", "out must be a string", function() aim.probe(m, tr, te, {out = 5}) end)
T.done()
