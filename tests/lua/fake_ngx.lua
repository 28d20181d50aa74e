-- A small stand-in for the parts of OpenResty's `ngx` API that the up42webhooks module uses, so
-- that tests can load the real module in a plain LuaJIT. Shared dicts hold a bounded number of
-- entries and answer "no memory" past it, like a full lua_shared_dict; ngx.exit ends the handler by
-- raising a sentinel, as the real one ends the content phase.
local fake = { EXIT = setmetatable({}, { __tostring = function() return "ngx.exit" end }) }

local function new_dict(capacity)
    -- TTLs are kept, as set, but nothing expires: tests advance no clock for the dicts.
    local d = { data = {}, count = 0, limit = capacity, ttls = {} }
    function d:get(k) return self.data[k] end
    function d:safe_add(k, v, ttl)
        if self.data[k] ~= nil then return false, "exists" end
        if self.count >= self.limit then return false, "no memory" end
        self.data[k], self.count, self.ttls[k] = v, self.count + 1, ttl
        return true
    end
    function d:ttl(k)
        if self.data[k] == nil then return nil, "not found" end
        return self.ttls[k] or 0
    end
    function d:expire(k, ttl)
        if self.data[k] == nil then return nil, "not found" end
        self.ttls[k] = ttl ~= 0 and ttl or nil
        return true
    end
    function d:set(k, v, ttl)
        if v == nil then
            self:delete(k)
            return true
        end
        if self.data[k] == nil then
            if self.count >= self.limit then return false, "no memory" end
            self.count = self.count + 1
        end
        self.data[k], self.ttls[k] = v, ttl ~= 0 and ttl or nil
        return true
    end
    d.safe_set = d.set
    function d:replace(k, v, ttl)
        if self.data[k] == nil then return false, "not found" end
        self.data[k], self.ttls[k] = v, ttl ~= 0 and ttl or nil
        return true
    end
    function d:incr(k, n, init)
        local v = self.data[k]
        if v == nil then
            if init == nil then return nil, "not found" end
            if self.count >= self.limit then return nil, "no memory" end
            v, self.count = init, self.count + 1
        end
        self.data[k] = v + n
        return v + n
    end
    function d:delete(k)
        if self.data[k] ~= nil then self.count = self.count - 1 end
        self.data[k], self.ttls[k] = nil, nil
    end
    function d:get_keys()
        local keys = {}
        for k in pairs(self.data) do keys[#keys + 1] = k end
        return keys
    end
    return d
end

local state

-- Sets up the request the next handler sees.
function fake.request(r)
    state = { r = r, out = {}, status = nil, headers_out = {}, logs = fake.logs }
    fake.ngx.header = state.headers_out
    fake.ngx.status = 0
    -- One table, updated in place: like OpenResty's ngx.var, it may be cached by modules.
    fake.ngx.var.remote_addr = r.remote_addr or "127.0.0.1"
    -- The TCP peer, when set_real_ip_from replaced remote_addr; the server's marker; the scheme.
    fake.ngx.var.realip_remote_addr = r.peer or fake.ngx.var.remote_addr
    fake.ngx.var.up42webhooks_listener = r.listener
    fake.ngx.var.scheme = r.scheme or "http"
    fake.ngx.var.uri = r.uri or "/"
    for k in pairs(fake.ngx.var) do
        if k:find("^http_") then fake.ngx.var[k] = nil end
    end
    for _, h in ipairs(r.headers or {}) do -- $http_<name>, as nginx spells it
        fake.ngx.var["http_" .. h[1]:lower():gsub("-", "_")] = h[2]
    end
end

-- Runs a handler; returns status, body, response headers.
function fake.run(handler)
    local ok, err = pcall(handler)
    if not ok and err ~= fake.EXIT then
        error(err, 0)
    end
    local status = state.exit_code or 0
    if status == 0 or status == 200 then
        status = (fake.ngx.status ~= 0 and fake.ngx.status) or 200
    end
    return status, table.concat(state.out), state.headers_out
end

fake.logs = {}
fake.ngx = {
    OK = 0, WARN = 5, ERR = 4, INFO = 7, NOTICE = 6,
    null = setmetatable({}, { __tostring = function() return "null" end }),
    shared = {},
    var = {},
    config = { prefix = function() return fake.prefix or "/nonexistent/" end },
    worker = { pid = function() return 4242 end },
    now = function() return fake.now end,
    update_time = function() end,
    say = function(...) local t = { ... }; state.out[#state.out + 1] = table.concat(t) .. "\n"; return 1 end,
    print = function(...) local t = { ... }; state.out[#state.out + 1] = table.concat(t); return 1 end,
    exit = function(code) state.exit_code = code; error(fake.EXIT, 0) end,
    log = function(level, ...) fake.logs[#fake.logs + 1] = { level, table.concat({ ... }) } end,
    time = function() return fake.now end,
    req = {
        get_method = function() return state.r.method or "POST" end,
        read_body = function() end,
        get_body_data = function() return state.r.body_file == nil and state.r.body or nil end,
        get_body_file = function() return state.r.body_file end,
        raw_header = function(no_request_line)
            assert(no_request_line, "the module asks for the headers without the request line")
            local lines = {}
            for _, h in ipairs(state.r.headers or {}) do lines[#lines + 1] = h[1] .. ": " .. h[2] .. "\r\n" end
            return table.concat(lines) .. "\r\n"
        end,
        get_headers = function()
            local t = {}
            for _, h in ipairs(state.r.headers or {}) do t[h[1]:lower()] = h[2] end
            return t
        end,
        get_uri_args = function() return state.r.args or {} end,
    },
}

function fake.new_dict(name, capacity)
    fake.ngx.shared[name] = new_dict(capacity)
end

return fake
