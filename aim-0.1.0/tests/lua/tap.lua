-- tap.lua - a tiny TAP producer for the Lua tests (tests/lua/*.lua), which
-- `make check` runs through `aim run`. Each check prints "ok N - ..." or
-- "not ok N - ..."; T.done() prints the plan, removes the test's temporary
-- folder and exits non-zero if anything failed.
local T = {}
local n, failed = 0, 0
local tmp

local function report(cond, desc, why)
    n = n + 1
    print(string.format("%sok %d - %s", cond and "" or "not ", n, desc))
    if not cond then
        failed = failed + 1
        if why then print("# " .. tostring(why):gsub("\n", "\n# ")) end
    end
    return cond
end

function T.ok(cond, desc, why)
    return report(cond and true or false, desc, why)
end

-- a check that cannot run here: TAP's "ok N # SKIP why" (counted, never a failure)
function T.skip(why)
    n = n + 1
    print(string.format("ok %d # SKIP %s", n, why))
end

function T.is(got, want, desc)
    return report(got == want, desc, string.format("got %s, want %s", tostring(got), tostring(want)))
end

function T.near(got, want, tol, desc)
    local good = type(got) == "number" and math.abs(got - want) <= tol
    return report(good, desc, string.format("got %s, want %s +- %g", tostring(got), tostring(want), tol))
end

-- fn must raise an error whose message contains needle (plain text)
function T.raises(needle, desc, fn, ...)
    local ok, err = pcall(fn, ...)
    local good = not ok and tostring(err):find(needle, 1, true) ~= nil
    return report(good, desc .. (good and ": " .. tostring(err):gsub("\n.*", "") or ""),
                  ok and "no error raised" or err)
end

-- an I/O failure: the call returns nil and a message containing needle
function T.fails(needle, desc, fn, ...)
    local ok, v, msg = pcall(fn, ...)
    local good = ok and v == nil and type(msg) == "string" and msg:find(needle, 1, true) ~= nil
    return report(good, desc .. (good and ": " .. msg or ""),
                  ok and string.format("returned %s, %s", tostring(v), tostring(msg)) or v)
end

-- a private temporary folder, removed by T.done()
function T.tmpdir()
    if not tmp then
        tmp = os.tmpname()
        os.remove(tmp)
        assert(os.execute("mkdir -p '" .. tmp .. "'"))
    end
    return tmp
end

function T.path(name)
    return T.tmpdir() .. "/" .. name
end

function T.exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
end

function T.read(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("a")
    f:close()
    return s
end

function T.write(path, data)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
end

-- a version 1.0 .npy file: descr like '<f4' or '|u1', shape a table, data a string
function T.npy(descr, shape, data)
    local dims = {}
    for i, d in ipairs(shape) do dims[i] = tostring(d) end
    local s = #dims == 1 and "(" .. dims[1] .. ",)" or "(" .. table.concat(dims, ", ") .. ")"
    local header = string.format("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, s)
    local total = 10 + #header + 1
    header = header .. string.rep(" ", (64 - total % 64) % 64) .. "\n"
    return "\147NUMPY\1\0" .. string.pack("<I2", #header) .. header .. data
end

function T.done()
    print("1.." .. n)
    if tmp then os.execute("rm -rf '" .. tmp .. "'") end
    os.exit(failed == 0 and 0 or 1)
end

return T
