-- aim/pretty.lua - turning values into readable text: nested tables on one
-- line with sorted keys and a depth/size limit (aim.format, aim.pp, and the
-- console's echo of values), and aligned text tables (aim.format_table,
-- aim.print_table) for results such as a scaling sweep.
local M = {}

local function fmt_number(v)
    if math.type(v) == "integer" then
        return tostring(v)
    end
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" end
    if v == -math.huge then return "-inf" end
    return string.format("%.6g", v)
end

local function is_ident(k)
    return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do
        keys[#keys + 1] = k
    end
    table.sort(keys, function(a, b)
        local ta, tb = type(a), type(b)
        if ta ~= tb then return ta < tb end
        if ta == "number" or ta == "string" then return a < b end
        return tostring(a) < tostring(b)
    end)
    return keys
end

local function format(v, depth, seen, opts)
    local t = type(v)
    if t == "number" then return fmt_number(v) end
    if t == "string" then return depth == 0 and not opts.quote and v or string.format("%q", v) end
    if t ~= "table" or getmetatable(v) and getmetatable(v).__tostring then
        return tostring(v)
    end
    if seen[v] then return "<cycle>" end
    if depth >= opts.depth then return "{...}" end
    seen[v] = true
    local parts, n = {}, #v
    for i = 1, n do
        if #parts >= opts.items then break end
        parts[#parts + 1] = format(v[i], depth + 1, seen, opts)
    end
    local count = n
    for _, k in ipairs(sorted_keys(v)) do
        local array_key = math.type(k) == "integer" and k >= 1 and k <= n
        if not array_key then
            count = count + 1
            if #parts < opts.items then
                local key = is_ident(k) and k or "[" .. format(k, opts.depth, seen, opts) .. "]"
                parts[#parts + 1] = key .. " = " .. format(v[k], depth + 1, seen, opts)
            end
        end
    end
    seen[v] = nil
    if count > #parts then parts[#parts + 1] = "..." end
    return "{" .. table.concat(parts, ", ") .. "}"
end

--- format(v [, opts]) -> string; opts.depth (3), opts.items (30 per table),
--- opts.quote (quote a top-level string)
function M.format(v, opts)
    opts = opts or {}
    return format(v, 0, {}, {depth = opts.depth or 3, items = opts.items or 30,
                             quote = opts.quote})
end

--- pp(...): print each value formatted
function M.pp(...)
    local out = {}
    for i = 1, select("#", ...) do
        out[i] = M.format((select(i, ...)))
    end
    print(table.concat(out, "\t"))
end

--- table(rows, columns [, opts]) -> string: one line per row, columns
--- aligned. columns: a list of keys, or of {key, title, fmt} (fmt a format
--- string or a function). Without columns: the sorted keys of the first row.
--- Numbers are right-aligned.
function M.table(rows, columns, opts)
    opts = opts or {}
    if not columns then
        columns = rows[1] and sorted_keys(rows[1]) or {}
    end
    local cols = {}
    for i, c in ipairs(columns) do
        if type(c) == "table" then
            cols[i] = {key = c[1], title = c[2] or tostring(c[1]), fmt = c[3]}
        else
            cols[i] = {key = c, title = tostring(c)}
        end
    end
    local cells, width, right = {}, {}, {}
    for j, c in ipairs(cols) do
        width[j] = #c.title
    end
    for i, row in ipairs(rows) do
        cells[i] = {}
        for j, c in ipairs(cols) do
            local v = row[c.key]
            local s
            if v == nil then
                s = ""
            elseif type(c.fmt) == "function" then
                s = c.fmt(v)
            elseif c.fmt then
                s = string.format(c.fmt, v)
            else
                s = type(v) == "number" and fmt_number(v) or tostring(v)
            end
            if type(v) == "number" then right[j] = true end
            cells[i][j] = s
            if #s > width[j] then width[j] = #s end
        end
    end
    local function line(values)
        local out = {}
        for j, s in ipairs(values) do
            local pad = string.rep(" ", width[j] - #s)
            out[j] = right[j] and pad .. s or s .. pad
        end
        return (table.concat(out, opts.sep or "  "):gsub("%s+$", ""))
    end
    local titles, rules = {}, {}
    for j, c in ipairs(cols) do
        titles[j] = c.title
        rules[j] = string.rep("-", width[j])
    end
    local lines = {line(titles), line(rules)}
    for i = 1, #rows do
        lines[#lines + 1] = line(cells[i])
    end
    return table.concat(lines, "\n")
end

return M
