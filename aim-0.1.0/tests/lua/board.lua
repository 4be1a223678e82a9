-- board.lua - what the TUI is built on, from Lua: the key bindings module
-- (aim.ui: key names, screen actions, notes, the export the TUI reads,
-- press), aim.pretrain's options for validation, the live probe,
-- reconstructions (also as TensorBoard images) and checkpoints (and their
-- errors), and the console's requests save() / probe() / recon() outside
-- and inside a job.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"
local keys = require "aim.keys"

-- ---- key bindings
T.is(aim.ui, keys, "aim.ui is the key bindings module")
T.is(keys.key_name(" "), "space", "key name: ' ' is space")
T.is(keys.key_name("C-L"), "C-l", "key name: C-L is C-l")
T.is(keys.key_name("F5"), "f5", "key name: F5 is f5")
T.is(keys.key_name("?"), "?", "key name: a character is itself")
T.ok(select(2, keys.key_name("hyper-x")):find("unknown key name", 1, true), "a bad key name is refused")
local export = keys.export()
T.ok(export:find("\nspace\tpause\tpause or resume the running job", 1, true) and
     export:find("\ns\tlua\t", 1, true) and export:find("\nq\tquit\t", 1, true),
     "the export lists screen actions and Lua keys with notes")
T.is(keys.export(keys.version), "", "an unchanged table exports nothing")
local v = keys.version
keys.bind("z", function() return "pressed z" end, "a test key")
T.ok(keys.version > v and keys.export(v):find("\nz\tlua\ta test key", 1, true), "bind adds a key")
T.is(keys.press("z"), "pressed z", "press runs its function")
T.raises("unknown screen action 'jump'", "an unknown screen action is refused",
         keys.bind, "j", "jump", "note")
T.raises("a note for the help screen", "a binding needs a note", keys.bind, "j", function() end)
T.raises("unknown key name", "a bad key is refused by bind", keys.bind, "nokey", "quit")
keys.bind("z", nil)
T.ok(not keys.export():find("\nz\t", 1, true), "bind(key, nil) removes it")
keys.bind("l", "help")
T.ok(keys.export():find("\nl\thelp\t" .. keys.actions.help, 1, true),
     "a screen action without a note takes the action's")
T.is(select(2, keys.press("nothing")), "no binding for nothing", "press of an unbound key")

-- ---- pretrain options for the panels
local ds = aim.data.synthetic{n = 48, channels = 3, size = 8}
local test = aim.data.synthetic{n = 24, channels = 3, size = 8, seed = 5}
local other = aim.data.synthetic{n = 24, channels = 1, size = 8}
local m = aim.model{preset = "micro", seed = 3}
T.raises("option 'val': the data is 1x8x8", "val must match the model",
         aim.pretrain, m, ds, {steps = 1, val = other})
T.raises("option 'probe_test' must be an open dataset", "probe_test must be a dataset",
         aim.pretrain, m, ds, {steps = 1, probe_test = 3})
T.raises("checkpoints need a run folder", "checkpoints need out",
         aim.pretrain, m, ds, {steps = 1, ckpt_every = 2})
T.fails("save: no job is running", "save() without a job", save)

local seen = {}
local out = T.path("run")
local r = aim.pretrain(m, ds, {steps = 12, batch = 4, out = out, val = test, val_every = 4,
                               val_images = 8, probe_test = test, probe_every = 6,
                               probe_images = 16, recon = test, recon_every = 5,
                               checkpoints = true, on_step = function(i)
    if i.step == 3 then seen.save = save() end
    if i.step == 4 then seen.probe = probe() end
    if i.step == 5 then seen.recon = recon() end
end})
T.is(r.steps, 12, "a job with validation, probe, reconstructions and checkpoints")
T.ok(seen.save and seen.save:find("checkpoint will be written", 1, true), "save() inside the job: " ..
     tostring(seen.save))
T.ok(seen.probe and seen.probe:find("live probe will run", 1, true), "probe() inside the job")
T.ok(seen.recon and seen.recon:find("refreshed after this step", 1, true), "recon() inside the job")
local kinds = {}
for line in io.lines(out .. "/metrics.jsonl") do
    local k = line:match('"kind":"(%a+)"')
    local s = tonumber(line:match('"step":(%d+)'))
    kinds[k] = kinds[k] or {}
    table.insert(kinds[k], s)
end
T.is(table.concat(kinds.val or {}, ","), "4,8,12", "validation every 4 steps (and at the end)")
T.is(table.concat(kinds.probe or {}, ","), "4,6,12", "the live probe: requested at 4, every 6")
local ck = {}
for f in io.popen("ls '" .. out .. "'"):lines() do
    local s = f:match("^ckpt%-(%d+)%.safetensors$")
    if s then ck[#ck + 1] = tonumber(s) end
end
table.sort(ck)
T.is(table.concat(ck, ","), "3,12", "checkpoints: the requested one and the final one")
-- the run folder's event file: reconstruction grids as TensorBoard images
-- (tests/test_tfevents.c and tests/test_train.c decode them)
local function count(path, s)
    local f = io.open(path, "rb")
    local data = f and f:read("a") or ""
    if f then f:close() end
    local k, i = 0, 1
    while true do
        local a, b = data:find(s, i, true)
        if not a then return k end
        k, i = k + 1, b + 1
    end
end
local ev = out .. "/events.out.tfevents.aim"
T.is(count(ev, "recon/val"), 3, "recon/val images at each validation (steps 4, 8, 12)")
T.is(count(ev, "recon/board"), 4, "recon/board images with the panel's (steps 1, 5, 10, 12)")
T.ok(recon():find("refreshed", 1, true), "recon() after the job refreshes from its model")
local p = probe()
T.ok(p and p:find("best block", 1, true), "probe() after the job runs a probe: " .. tostring(p))
m:close()
T.fails("closed", "recon() once the model is closed", recon)
local out0 = T.path("run0")
local r0 = aim.pretrain(aim.model{preset = "micro", seed = 3}, ds,
                        {steps = 4, batch = 4, out = out0, val = test, val_every = 2, val_images = 8,
                         recon = test, recon_every = 2, recon_images = 0})
T.ok(r0 and count(out0 .. "/events.out.tfevents.aim", "recon/") == 0 and
     count(out0 .. "/events.out.tfevents.aim", "val/val_loss") == 2,
     "recon_images = 0: no images in the event file, the validation scalars are there")
T.raises("option 'recon_images' must be in 0..8", "recon_images above 8 raises",
         aim.pretrain, aim.model{preset = "micro"}, ds, {steps = 1, recon_images = 9})
T.done()
