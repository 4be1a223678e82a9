-- compare.lua - aim.compare: runs side by side. Two run folders written
-- here (metrics.jsonl as aim.pretrain writes it), the summaries it returns
-- (steps, final loss, best validation, the last probe and its best block,
-- labels), the calling forms (a table, varargs, a metrics.jsonl path),
-- clearing, and the errors: each names the path and the problem.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"

-- a run folder: `steps` training lines with loss = f(step), validation
-- every val_every steps (val_loss = v(step)), probes at the given steps
local function run(name, steps, f, val_every, v, probes)
    local dir = T.path(name)
    os.execute("mkdir -p '" .. dir .. "'")
    local out = {}
    for s = 1, steps do
        out[#out + 1] = string.format('{"run":"%s","step":%d,"kind":"train","wall":1.5,' ..
                                      '"loss":%.9g,"lr":0.001,"grad_norm":1}', name, s, f(s))
        if val_every and s % val_every == 0 then
            out[#out + 1] = string.format('{"run":"%s","step":%d,"kind":"val","wall":1.5,' ..
                                          '"val_loss":%.9g,"best_val_loss":0}', name, s, v(s))
        end
        if probes and probes[s] then
            out[#out + 1] = string.format('{"run":"%s","step":%d,"kind":"probe","images":100,' ..
                                          '"top1":[%s],"best_block":1}', name, s,
                                          table.concat(probes[s], ","))
        end
    end
    T.write(dir .. "/metrics.jsonl", table.concat(out, "\n") .. "\n")
    return dir
end

-- a: 300 steps, loss 3 - s/100, validation every 50 with a minimum at 200
local a = run("alpha", 300, function(s) return 3 - s / 100 end, 50,
              function(s) return 1 + math.abs(s - 200) / 100 end,
              {[100] = {30, 40, 35}, [300] = {50, 61.5, 58, 44}})
-- b: 40 steps, no validation, no probe
local b = run("beta", 40, function(s) return 2 + 1 / s end)

local r = aim.compare{a, b}
T.is(#r, 2, "aim.compare{a, b}: one summary per run")
T.is(r[1].label, "alpha", "the label is the folder's name")
T.is(r[2].label, "beta", "... for each run")
T.is(r[1].path, a, "the summary keeps the path given")
T.is(r[1].steps, 300, "steps: the last training step")
T.is(r[1].lines, 300, "lines: the training steps logged")
T.is(r[1].points, 300, "fewer steps than curve points: one point each")
T.near(r[1].final_loss, 0, 1e-6, "final_loss: the last step's loss")
T.near(r[1].best_val, 1, 1e-6, "best_val: the lowest validation loss")
T.is(r[1].best_val_step, 200, "best_val_step: where it was measured")
T.is(#r[1].probe, 4, "probe: the last probe line's blocks")
T.ok(r[1].probe[1] == 50 and math.abs(r[1].probe[2] - 61.5) < 1e-6 and r[1].probe[3] == 58 and
     r[1].probe[4] == 44, "... with their top-1", aim.format(r[1].probe))
T.is(r[1].probe_step, 300, "probe_step: the last probe's step")
T.near(r[1].best_probe, 61.5, 1e-6, "best_probe: the best block of the last probe")
T.is(r[1].best_probe_block, 2, "best_probe_block: that block")
T.near(r[2].final_loss, 2 + 1 / 40, 1e-6, "the second run's final loss")
T.ok(r[2].best_val == nil and r[2].probe == nil and r[2].best_probe == nil,
     "a run without validation or probe has no such fields")
T.is(r[2].nonfinite, 0, "no non-finite losses")

-- a long run is reduced to 512 points of bucket means
local long = run("long", 2000, function(s) return s end)
local rl = aim.compare(long)[1]
T.is(rl.points, 512, "2000 steps: the curve has 512 points")
T.is(rl.steps, 2000, "... and the summary still counts every step")

-- calling forms
local liar = setmetatable({}, {__len = function() return 2^32 + 1 end})
T.raises("at most", "a table whose __len says 2^32 + 1 is not cut to 1 run", aim.compare, liar)
local v = aim.compare(a, b .. "/")
T.ok(#v == 2 and v[1].label == "alpha" and v[2].label == "beta",
     "varargs and a trailing slash give the same runs")
local f = aim.compare{b .. "/metrics.jsonl"}
T.is(f[1].label, "beta", "a metrics.jsonl path: labelled by its folder")
local d = aim.compare{a, a}
T.ok(d[1].label == "alpha" and d[2].label == "alpha#2", "the same name twice is told apart: " ..
     tostring(d[2].label))
T.is(#aim.compare{}, 0, "aim.compare{} clears (and returns no runs)")
T.is(#aim.compare(), 0, "aim.compare() too")

-- a bad run: nil and a message naming the path and the problem (as aim.load),
-- and nothing published
local function fails(msg, desc, ...)
    local r, err = aim.compare(...)
    T.ok(r == nil and type(err) == "string" and err:find(msg, 1, true) ~= nil,
         desc .. ": " .. tostring(err))
end
fails(T.path("nosuch") .. ": no such run folder or metrics file", "a missing path",
      {a, T.path("nosuch")})
os.execute("mkdir -p '" .. T.path("empty") .. "'")
fails(T.path("empty") .. ": not a run folder (no metrics.jsonl)", "a folder without metrics.jsonl",
      T.path("empty"))
local bad = T.path("bad")
os.execute("mkdir -p '" .. bad .. "'")
T.write(bad .. "/metrics.jsonl", '{"run":"x","step":1,"kind":"train","loss":1}\n{"step": oops}\n')
fails(bad .. "/metrics.jsonl: line 2 is not a metrics object", "a malformed line", bad)
local noval = T.path("notrain")
os.execute("mkdir -p '" .. noval .. "'")
T.write(noval .. "/metrics.jsonl", '{"run":"x","step":5,"kind":"val","val_loss":1.5}\n')
fails(noval .. "/metrics.jsonl: no training steps", "a log without training steps", noval)
-- bad arguments raise "bad argument #n to 'aim.compare' (...)" (or 'aim.core.compare': the
-- same table is loaded under both names)
local function arg_error(n, why, desc, ...)
    local ok, err = pcall(aim.compare, ...)
    local pat = "bad argument #" .. n .. " to '[%w.]*compare' %(" .. (why:gsub("%p", "%%%0"))
    T.ok(not ok and tostring(err):find(pat) ~= nil, desc .. ": " .. tostring(err):gsub("\n.*", ""), err)
end
arg_error(1, "at most 8 runs, got 9)", "more than 8 runs", {a, a, a, a, a, a, a, a, a})
arg_error(1, "run 2: a run folder expected, got number)", "a number in the table", {a, 2})
arg_error(2, "one table of runs or several paths, not both)", "a table and more arguments", {a}, b)
arg_error(2, "path 2: a run folder expected, got boolean)", "varargs: a boolean", a, true)

-- what `aim tui --compare` runs: the summaries printed as a table, kept as `runs`
local lines = {}
local old_print = print
print = function(...) lines[#lines + 1] = table.concat({...}, "\t") end
local ok, res = pcall(require("aim.compare").open, {a, b})
print = old_print
local text = table.concat(lines, "\n")
T.ok(ok and #res == 2 and _G.runs == res, "aim.compare module: open returns the summaries, kept as runs",
     ok and "" or res)
T.ok(text:find("comparing 2 runs", 1, true) and text:find("\nalpha +300 +0%.0000 +1%.0000@200 +61%.50 b2") and
     text:find("\nbeta +40 +2%.0250 +%- +%-"), "... and prints a table of them", text)
T.done()
