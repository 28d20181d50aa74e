-- The original article's receiver (seeds: up42-webhooks-part2-openresty), for the benchmark: read
-- the body and `set` it under a per-worker counter, no checks at all. Its bugs are kept on
-- purpose (the counter is a Lua upvalue, so two workers write the same keys; `set` evicts when
-- full): this is the speed of doing nothing careful.
local ngx = ngx
local format = string.format
local rcvd = ngx.shared.article_webhooks

local _M = {}

local counter = 0

function _M.set_key_value_webhook()
    ngx.req.read_body()
    local data = ngx.req.get_body_data()
    local ok, err
    if data then
        counter = counter + 1
        ok, err = rcvd:set(counter, data)
    end
    if ok then
        return format('{"msg": "value with key %d stored"}', counter)
    end
    counter = counter - 1
    return format('{"msg": "%s"}', err)
end

return _M
