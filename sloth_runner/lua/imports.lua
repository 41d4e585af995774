-- import() and require() for workflow files, loaded after dsl.lua with the same (S, host).
-- Kept apart from the DSL: how files find each other is not how tasks are defined.
local S, host = ...

local type, error, tostring, ipairs, pcall = type, error, tostring, ipairs, pcall
local fmt = string.format

---------------------------------------------------------------------------------------------
-- import("relative/file.lua") (Go's) and require("lib.x"), relative to the workflow file's
-- folder, whatever the current directory (cron runs jobs from /). Text only: never bytecode.
---------------------------------------------------------------------------------------------
local read_source, load = host.read_source, load

local function load_text(path)
    local src, err = read_source(path)
    if not src then return nil, err end
    if src:sub(1, 2) == "#!" then src = "--" .. src end  -- a shebang line, as lua itself skips
    return load(src, "@" .. path, "t")
end

local function beside(rel)
    if rel:sub(1, 1) == "/" or not S.base_dir then return rel end
    return S.base_dir .. "/" .. rel
end

-- The folder of each file being imported, innermost last: a library's own import("../x.lua")
-- means beside that library, as its author wrote it, then the workflow's folder (a stack,
-- not debug.getinfo, which the sandbox removes).
local importing = {}

local function dir_of(path)
    return path:match("^(.*)/[^/]*$") or "."
end

function import(rel)
    if type(rel) ~= "string" or rel == "" then
        error("import(path) expects a path string, got " .. type(rel), 2)
    end
    local candidates = {}
    local inner = importing[#importing]
    if inner and rel:sub(1, 1) ~= "/" then candidates[1] = inner .. "/" .. rel end
    local root = beside(rel)
    if candidates[1] ~= root then candidates[#candidates + 1] = root end
    local chunk, err, path
    for _, candidate in ipairs(candidates) do
        chunk, err = load_text(candidate)
        path = candidate
        if chunk or not tostring(err):find("No such file", 1, true) then break end
    end
    if not chunk then
        local looked = #candidates > 1 and (" (looked at " .. table.concat(candidates, " and ")
                                            .. ")") or (" (" .. candidates[1] .. ")")
        error(fmt("import: cannot load %s%s: %s", rel, looked, tostring(err)), 2)
    end
    importing[#importing + 1] = dir_of(path)
    local results = table.pack(pcall(chunk))
    importing[#importing] = nil
    if not results[1] then error(results[2], 0) end
    return table.unpack(results, 2, results.n)
end

table.insert(package.searchers, 2, function(name)
    if not S.base_dir then return nil end
    local rel = name:gsub("%.", "/")
    local tried = {}
    for _, candidate in ipairs({rel .. ".lua", rel .. "/init.lua"}) do
        local path = beside(candidate)
        local chunk, err = load_text(path)
        if chunk then return chunk, path end
        if err and not tostring(err):find("No such file", 1, true) then
            error(fmt("error loading module '%s' from %s:\n\t%s", name, path, tostring(err)), 0)
        end
        tried[#tried + 1] = "\n\tno file '" .. path .. "'"
    end
    return table.concat(tried)
end)
