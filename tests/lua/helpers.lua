-- helpers.lua - the pure-Lua part (lua/aim/*.lua): pretty printing, text
-- tables, script arguments, run folder names, the console globals and
-- tab-completion candidates.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"

-- aim.format
T.is(aim.format{1, 2.5, "x", true}, '{1, 2.5, "x", true}', "format a list")
T.is(aim.format{b = 1, a = {c = 2}}, "{a = {c = 2}, b = 1}", "format sorts keys and nests")
T.is(aim.format{["a b"] = 1, [10] = 2}, '{[10] = 2, ["a b"] = 1}', "format quotes odd keys")
T.is(aim.format("top"), "top", "a top-level string is shown as is")
T.is(aim.format(1 / 3), "0.333333", "floats with 6 digits")
T.is(aim.format(0 / 0), "nan", "nan")
local cyc = {}
cyc.self = cyc
T.is(aim.format(cyc), "{self = <cycle>}", "cycles are marked")
T.is(aim.format({{{{1}}}}), "{{{{...}}}}", "depth is limited")
local long = {}
for i = 1, 40 do long[i] = i end
T.ok(aim.format(long):find(", ...}$"), "long tables are cut")
T.ok(aim.format{t = aim.tensor{1}}:find("aim.tensor [1]", 1, true), "userdata use their __tostring")

-- aim.format_table
local text = aim.format_table({{name = "a", loss = 0.5}, {name = "bbb", loss = 0.25}},
                              {"name", {"loss", "final loss", "%.3f"}})
T.is(text, "name  final loss\n----  ----------\na          0.500\nbbb        0.250", "format_table aligns columns")
T.is(aim.format_table({{x = 1}}), "x\n-\n1", "format_table without columns uses the keys")

-- aim.pp, aim.print_table and help() print (captured here)
local printed = {}
local real_print = print
print = function(...) printed[#printed + 1] = table.concat({...}, "\t") end
aim.pp({x = 1}, "s")
aim.print_table({{a = 1}}, {"a"})
help()
print = real_print
T.is(printed[1], '{x = 1}\ts', "pp prints formatted values")
T.is(printed[2], "a\n-\n1", "print_table prints the table")
T.ok(printed[3] and printed[3]:find("aim.pretrain", 1, true), "help() prints an overview")
T.ok(aim.version:match("^%d+%.%d+%.%d+"), "aim.version: " .. aim.version)
T.ok(aim.dist.rank == 0 and aim.dist.size == 1 and
     (aim.dist.mpi == false or type(aim.dist.mpi) == "string"),
     "aim.dist outside mpirun: rank 0 of 1, mpi = " .. tostring(aim.dist.mpi))

-- aim.args
local a = aim.args({"steps=20", "lr=3e-4", "name=run1", "flip", "size=8.0"},
                   {steps = 100, lr = 1e-3, name = "x", flip = false, size = 28, other = 7})
T.ok(a.steps == 20 and math.type(a.steps) == "integer" and a.lr == 3e-4 and a.name == "run1"
     and a.flip == true and a.size == 8 and math.type(a.size) == "integer" and a.other == 7,
     "args converts to the defaults' types: " .. aim.format(a))
T.raises("unknown argument 'stpes'", "an unknown argument raises", aim.args, {"stpes=1"}, {steps = 1})
T.raises("a number is expected", "a bad number raises", aim.args, {"steps=x"}, {steps = 1})
T.raises("an integer is expected", "a fraction for an integer raises", aim.args, {"steps=1.5"}, {steps = 1})
T.raises("expected key=value", "a bare word raises", aim.args, {"steps"}, {steps = 1})
T.raises("true or false", "a bad boolean raises", aim.args, {"flip=maybe"}, {flip = false})
T.is(next(aim.args(nil, {})), nil, "no arguments, no defaults")

-- aim.run_dir, aim.data.default
T.ok(aim.run_dir("x"):match("^runs/%d+%-%d+%-x$"), "run_dir: " .. aim.run_dir("x"))
local d = aim.data.default("test", {size = 8, limit = 10})
T.ok(d and #d == 10 and d.height == 8, "aim.data.default gives a dataset: " .. tostring(d))

-- console globals
T.ok(type(pause) == "function" and type(resume) == "function" and type(stop) == "function"
     and type(lr) == "function" and _G.aim == aim, "pause, resume, stop, lr and aim are globals")
T.ok(type(help) == "function", "help() is there")

-- completion
local complete = require "aim.complete"
local function c(word) return table.concat(complete(word), " ") end
T.is(c("aim.data.fa"), "aim.data.fashion_mnist", "aim.data.fa -> fashion_mnist")
T.ok(c("aim.mo"):find("aim.model", 1, true), "aim.mo -> aim.model")
T.is(c("aim.tensor.z"), "aim.tensor.zeros", "aim.tensor.z -> zeros")
m = aim.model "micro"
T.is(c("m:pred"), "m:predict", "m:pred -> m:predict (methods of a model)")
T.is(c("m:pre"), "m:precision m:predict", "m:pre -> both methods that begin so, sorted")
t = aim.tensor{1}
T.is(c("t:nar"), "t:narrow", "t:nar -> t:narrow (methods of a tensor)")
ds = aim.data.synthetic{n = 2, size = 8}
T.is(c("ds:ba"), "ds:batch", "ds:ba -> ds:batch (methods of a dataset)")
T.ok(c("pri"):find("print", 1, true), "pri -> print (globals)")
T.ok(c("whi"):find("while", 1, true), "whi -> while (keywords)")
T.is(c("s = 'x'; s:up"), "", "not a name path: nothing")
T.is(c("nothing.here"), "", "an unknown table: nothing")
local str = "abc"
_G.str = str
T.is(c("str:up"), "str:upper", "string methods after ':'")

T.done()
