-- LuaJIT FFI binding of libup42webhooks. The declarations come from cdef.lua, which is generated
-- from include/up42webhooks.h (a test keeps the two identical), never written by hand.
local ffi = require "ffi"
local cdef = require "up42webhooks.cdef"

local ffi_new, ffi_str, ffi_gc = ffi.new, ffi.string, ffi.gc
local tonumber, type, ipairs = tonumber, type, ipairs

ffi.cdef(cdef)

local _M = { _VERSION = "0.2.0" }

-- Finds libup42webhooks.so through package.cpath (nginx: lua_package_cpath), as Lua finds C
-- modules, and says where it looked when it cannot.
local function find_library()
    local tried = {}
    for template in package.cpath:gmatch("[^;]+") do
        local path = template:gsub("%?", "libup42webhooks")
        local f = io.open(path, "rb")
        if f then
            f:close()
            return path
        end
        tried[#tried + 1] = path
    end
    return nil, "libup42webhooks.so not found in package.cpath (lua_package_cpath); tried: "
        .. table.concat(tried, ", ")
end

local path, err = find_library()
if not path then
    error(err, 2)
end
-- Held by this module for the life of the VM: a collected clib would unload the .so while keys
-- made from it still wait for their finalizer.
local C = ffi.load(path)
_M.library_path = path

-- The library must be the one this binding was made with: a stale .so beside a newer module (or
-- the reverse) would be called through declarations that no longer match it.
function _M.check_version(found)
    if found ~= _M._VERSION then
        return nil, path .. " is libup42webhooks " .. tostring(found) .. ", and this Lua module is "
            .. _M._VERSION .. ": install the library and the module of one build together"
    end
    return true
end

do
    local ok, verr = _M.check_version(ffi_str(C.up42wh_version()))
    if not ok then
        error(verr, 2)
    end
end

local OK = tonumber(C.UP42WH_RESULT_OK)
local up42wh_result_name = C.up42wh_result_name
local up42wh_result_message = C.up42wh_result_message

-- The structs below are reused per VM (one per nginx worker): requests in a worker run one at a
-- time between yields, and nothing here yields.

function _M.result_name(code)
    return ffi_str(up42wh_result_name(code))
end

function _M.result_message(code)
    return ffi_str(up42wh_result_message(code))
end

-- `value` when the call returned OK, else nil, the result's name and its message.
local function checked(rc, value)
    if rc ~= OK then
        return nil, _M.result_name(rc), _M.result_message(rc)
    end
    return value
end

function _M.version()
    return ffi_str(C.up42wh_version())
end

local function set_slice(slice, s)
    s = s or ""
    slice.ptr, slice.len = s, #s
end

-- The limits of message options, where the caller gives them.
local function set_limits(opts, o)
    if o.max_age then opts.max_age = o.max_age end
    if o.max_future then opts.max_future = o.max_future end
    if o.max_body then opts.max_body = o.max_body end
end

-- The delivery struct's fields as strings: id, event, status.
function _M.delivery_id(d)
    return ffi_str(d.id, d.id_len)
end

function _M.delivery_text(d)
    return ffi_str(d.event, d.event_len), ffi_str(d.status, d.status_len)
end

-- The store's records (src/format/record.rs): written into a buffer of the worker's, grown to fit, and
-- read back; a 1 KiB body is kept as an LZ4 block when that is smaller.
local record_out = ffi_new("up42wh_buffer")
local record_buf
local up42wh_record_write = C.up42wh_record_write
local up42wh_record_line = C.up42wh_record_line
local floor = math.floor
local byte = string.byte

local function buffer(n)
    if record_out.cap < n then
        record_buf = ffi_new("uint8_t[?]", n)
        record_out.ptr, record_out.cap = record_buf, n
    end
    return record_out
end

-- The buffer's pointer and length after a call that filled it, or nil, err.
local function written(rc)
    if rc ~= OK then
        return nil, _M.result_message(rc)
    end
    return record_out.ptr, tonumber(record_out.len)
end

-- The same as a string.
local function filled(rc)
    local ptr, len = written(rc)
    if not ptr then
        return nil, len
    end
    return ffi_str(ptr, len)
end

-- The record of a journal's event from the reader's struct (see journal_read), the same way.
function _M.journal_record(r)
    local meta, line = r.meta, r.body
    local n = tonumber(line.len)
    local out = buffer(n + floor(n / 8) + tonumber(meta.len) + 64)
    return written(tonumber(up42wh_record_write(r.time, meta.ptr, meta.len, line.ptr, line.len, out)))
end

-- A stored record's fields, read by the library (the one reader of the format, src/format/record.rs):
-- time, whether it is an older version's pending record, whether the line is compressed, event,
-- status, live, the line (or its block: record_line reads it; false with `skip_line`, for readers
-- that only look at keys) and the envelope (nil in an event of an older journal); nil when `v` is
-- not a record.
local record_fields = ffi_new("up42wh_record_fields")
record_fields.size = ffi.sizeof("up42wh_record_fields")
local up42wh_record_read = C.up42wh_record_read
local sub = string.sub

local function read_record(v)
    return up42wh_record_read(v, #v, record_fields) == OK and record_fields or nil
end

local function span(v, s)
    local at = s.at
    return sub(v, at + 1, at + s.len)
end

function _M.record_fields(v, skip_line)
    local f = read_record(v)
    if not f then
        return nil
    end
    return tonumber(f.time), f.pending, f.compressed, span(v, f.event), span(v, f.status), span(v, f.live),
           not skip_line and span(v, f.line), f.has_envelope and span(v, f.envelope) or nil
end

-- A stored record's time, or nil when `v` is not a record.
function _M.record_time(v)
    local f = read_record(v)
    return f and tonumber(f.time)
end

-- The line of a compressed record from what follows its last meta field, or nil, err.
function _M.record_line(block)
    local a, b, c, d = byte(block, 1, 4)
    if not d then
        return nil, "a damaged record"
    end
    local out = buffer(a + b * 256 + c * 65536 + d * 16777216)
    return filled(tonumber(up42wh_record_line(block, #block, out)))
end

-- Key kinds of the C ABI (its constants, as the header declares them), by the names configure{}
-- uses: UP42WH_KEY_KIND_<NAME>.
local function constants(prefix, names)
    local t = {}
    for _, name in ipairs(names) do
        t[name] = tonumber(C[prefix .. name:upper()])
    end
    return t
end
local KEY_KIND = constants("UP42WH_KEY_KIND_", { "hmac", "ed25519_pem", "standard_webhooks" })
-- The schemes by name, as the library lists them (up42wh_scheme_name): a scheme added there is
-- known here without a word of Lua.
_M.SCHEME = {}
for n = 1, 64 do
    local name = C.up42wh_scheme_name(n)
    if name == nil then
        break
    end
    _M.SCHEME[ffi_str(name)] = n
end
-- The Redis store's stream entry, its fields as the library names them (src/format/entry.rs): ENTRY.json
-- is the name of UP42WH_ENTRY_FIELD_JSON. A field the library does not know fails the load.
_M.ENTRY = {}
for _, f in ipairs{ "json", "event", "status", "live", "sender", "id", "time", "envelope" } do
    _M.ENTRY[f] = ffi_str(C.up42wh_entry_field_name(C["UP42WH_ENTRY_FIELD_" .. f:upper()]))
end

-- A key ring from a list of { kind = "hmac"|"ed25519_pem"|"standard_webhooks", keyid = ..., material
-- = ... } (keyid may be nil for an Ed25519 PEM key: UbiOps' sha512 id is derived). Returns the ring
-- and the list of its key ids, or nil, err.
function _M.new_keyring(keys)
    local out = ffi_new("up42wh_keyring *[1]")
    local rc = tonumber(C.up42wh_keyring_new(out))
    if rc ~= OK then
        return nil, _M.result_message(rc)
    end
    local ring = ffi_gc(out[0], C.up42wh_keyring_free)
    local ids, slice = {}, ffi_new("up42wh_slice")
    for i, k in ipairs(keys) do
        local kind = KEY_KIND[k.kind]
        local keyid, material = k.keyid or "", k.material
        if not kind or type(material) ~= "string" or type(keyid) ~= "string" then
            return nil, "key " .. i .. ": needs a kind (hmac, ed25519_pem, standard_webhooks) and its material"
        end
        rc = tonumber(C.up42wh_keyring_add(ring, kind, keyid, #keyid, material, #material, nil))
        if rc ~= OK then
            return nil, "key " .. i .. ": " .. _M.result_message(rc)
        end
        rc = tonumber(C.up42wh_keyring_keyid(ring, i - 1, slice))
        ids[i] = rc == OK and ffi_str(slice.ptr, slice.len) or keyid
    end
    return ring, ids
end

-- UP42's signing (src/sign.rs): a key of one secret, and the three headers of a body signed
-- with it, as one raw header block. The admin listener signs the events it learns of with a key
-- of its own (up42webhooks/learnt.lua), so that they take the deliveries' one path.
function _M.new_signing_key(secret)
    local slice, out = ffi_new("up42wh_slice[1]"), ffi_new("up42wh_key *[1]")
    set_slice(slice[0], secret)
    local rc = tonumber(C.up42wh_key_new(slice, 1, out))
    if rc ~= OK then
        return nil, _M.result_message(rc)
    end
    return ffi_gc(out[0], C.up42wh_key_free)
end

local signed = ffi_new("up42wh_signed")

function _M.sign_up42(key, body, created)
    local rc = tonumber(C.up42wh_sign(key, body, #body, created, nil, signed))
    if rc ~= OK then
        return nil, _M.result_name(rc), _M.result_message(rc)
    end
    return "Content-Digest: " .. ffi_str(signed.content_digest, signed.content_digest_len)
        .. "\r\nSignature-Input: " .. ffi_str(signed.signature_input, signed.signature_input_len)
        .. "\r\nSignature: " .. ffi_str(signed.signature, signed.signature_len) .. "\r\n\r\n"
end

-- Options for verify_message and deliver (scheme: a name of SCHEME). The label and
-- required strings are kept by the returned table, so that the pointers in the C struct stay
-- valid as long as the options are used.
function _M.new_message_options(scheme, o)
    o = o or {}
    local opts = ffi_new("up42wh_message_options")
    local rc = tonumber(C.up42wh_message_options_init(opts, _M.SCHEME[scheme] or 0))
    if rc ~= OK then
        return nil, "unknown scheme " .. tostring(scheme)
    end
    local holder = { cdata = opts, label = o.label, required = o.required }
    if o.label then set_slice(opts.label, o.label) end
    if o.required then set_slice(opts.required, o.required) end
    set_limits(opts, o)
    if o.require_created ~= nil then opts.require_created = o.require_created end
    if o.require_digest ~= nil then opts.require_digest = o.require_digest end
    -- UP42: the body timestamp's own age limit, and whether its unsigned created/expires refuse.
    if o.timestamp_max_age then opts.timestamp_max_age = o.timestamp_max_age end
    if o.refuse_unsigned_times ~= nil then opts.refuse_unsigned_times = o.refuse_unsigned_times end
    return holder
end

local message_req = ffi_new("up42wh_request")
local message_verified = ffi_new("up42wh_message_verified")
local up42wh_verify_message = C.up42wh_verify_message

local function fill_request(r)
    set_slice(message_req.method, r.method)
    set_slice(message_req.scheme, r.scheme)
    set_slice(message_req.authority, r.authority)
    set_slice(message_req.target, r.target)
    set_slice(message_req.raw_headers, r.raw_headers)
    set_slice(message_req.body, r.body)
end

-- Verifies a request of any sender. `r` holds raw_headers and body, and for RFC 9421 method,
-- scheme, authority and target (strings, kept alive by the caller for the call). Returns the reused verified struct
-- (read it before the next call) or nil, the result name and its message.
function _M.verify_message(ring, r, now, options)
    fill_request(r)
    local rc = up42wh_verify_message(ring, message_req, now, options.cdata, message_verified)
    return checked(tonumber(rc), message_verified)
end

-- The journal (src/journal.rs): segment writers, a reader, usage and segment removal. Errors are
-- returned as text with the system's reason.
ffi.cdef[[char *strerror(int errnum);]]

local errno_out = ffi_new("int32_t[1]")
local size_out = ffi_new("uint64_t[1]")
local record = ffi_new("up42wh_record")
local journal_stats = ffi_new("up42wh_journal_stats")
local JOURNAL_END = tonumber(C.UP42WH_RESULT_JOURNAL_END)
local up42wh_journal_append = C.up42wh_journal_append
local ZERO_DIGEST = ("\0"):rep(32)

local function failure(what, rc, errno)
    if errno and errno ~= 0 then
        return what .. ": " .. ffi_str(ffi.C.strerror(errno))
    end
    return what .. ": " .. _M.result_message(rc)
end

_M.ENOSPC = 28 -- the same on every Linux architecture

-- The file of segment `seg` in `dir` (src/journal.rs names them so).
local function segment_path(dir, seg)
    return dir .. ("/events.%06d.log"):format(seg)
end
_M.segment_path = segment_path

-- What is wrong with the journal's salt, when something is: its segments cannot be read without
-- their salt, and the library's own word for that (an I/O error, "no such file") names no file.
local SALT_LEN = 16
local function salt_problem(dir, needed)
    local salt = dir .. "/journal.salt"
    local f, why = io.open(salt, "rb")
    if not f then
        if why and why:find("No such file", 1, true) then
            return needed and (salt .. " is missing: the segments beside it cannot be read without it "
                               .. "(restore it from a backup of this directory)") or nil
        end
        return "cannot read " .. tostring(why)
    end
    local size = f:seek("end")
    f:close()
    if size ~= SALT_LEN then
        return salt .. " is " .. tostring(size) .. " bytes, not " .. SALT_LEN .. ": it is damaged, and the "
               .. "segments beside it cannot be read without it (restore it from a backup of this directory)"
    end
    return nil
end

-- The path of each writer, for its error messages.
local path_of = setmetatable({}, { __mode = "k" })

_M.RECORD = { event = 1, drop = 2, cancel = 3, position = 4 }

-- A writer appending to segment `segment` of the journal in `dir`, or nil, err.
function _M.journal_open(dir, segment)
    local out = ffi_new("up42wh_journal *[1]")
    errno_out[0] = 0
    local rc = tonumber(C.up42wh_journal_open(dir, #dir, segment, out, errno_out))
    if rc ~= OK then
        return nil, salt_problem(dir, false)
                    or failure("cannot open " .. segment_path(dir, segment), rc, errno_out[0])
    end
    local j = ffi_gc(out[0], C.up42wh_journal_free)
    path_of[j] = segment_path(dir, segment)
    return j
end

-- Appends one record (strings may be nil for drops and cancels; digest is 32 bytes); returns the
-- segment's size after it, or nil, err.
function _M.journal_append(j, kind, reason, key, time, digest, id, meta, body)
    record.kind, record.reason, record.key, record.time = kind, reason, key, time
    ffi.copy(record.digest, digest or ZERO_DIGEST, 32)
    set_slice(record.id, id or "")
    set_slice(record.meta, meta or "")
    set_slice(record.body, body or "")
    local rc = tonumber(up42wh_journal_append(j, record, size_out))
    if rc ~= OK then
        local errno = tonumber(C.up42wh_journal_errno(j))
        return nil, failure("cannot append to " .. tostring(path_of[j]), rc, errno), errno
    end
    return tonumber(size_out[0])
end

function _M.journal_sync(j)
    local rc = tonumber(C.up42wh_journal_sync(j))
    if rc ~= OK then
        local errno = tonumber(C.up42wh_journal_errno(j))
        return nil, failure("cannot sync " .. tostring(path_of[j]), rc, errno), errno
    end
    return true
end

local function stats_table(s)
    return {
        segments = tonumber(s.segments), first_segment = tonumber(s.first_segment),
        last_segment = tonumber(s.last_segment), bytes = tonumber(s.bytes),
        records = tonumber(s.records), corrupt = tonumber(s.corrupt),
        torn_bytes = tonumber(s.torn_bytes), max_key = tonumber(s.max_key), max_time = tonumber(s.max_time),
    }
end

-- Reads every good record of the journal in `dir` (or of one segment), oldest first, calling
-- each(kind, reason, key, time, digest, id, meta, record) for each, `record` the reader's struct
-- (valid during the call: journal_record writes the dict's record from it, and its body never
-- becomes a Lua string); returns what the reader found (segments, bytes, records, corrupt,
-- torn_bytes, max_key, ...), or nil, err. With `cut_torn` (recovery, before anything appends),
-- torn tails are cut off their segments afterwards (`torn_cut`: the bytes cut).
function _M.journal_read(dir, segment, each, cut_torn)
    local out = ffi_new("up42wh_journal_reader *[1]")
    errno_out[0] = 0
    local rc = tonumber(C.up42wh_journal_reader_open(dir, #dir, segment or 0, out, errno_out))
    if rc ~= OK then
        local errno = errno_out[0]
        local usage = _M.journal_usage(dir)
        return nil, (usage and usage.segments > 0 and salt_problem(dir, true))
                    or failure("cannot read the journal in " .. dir, rc, errno)
    end
    local reader = ffi_gc(out[0], C.up42wh_journal_reader_free)
    local r = ffi_new("up42wh_record")
    local next_record = C.up42wh_journal_reader_next
    while true do
        rc = tonumber(next_record(reader, r))
        if rc == JOURNAL_END then break end
        if rc ~= OK then
            return nil, failure("cannot read the journal in " .. dir, rc)
        end
        each(tonumber(r.kind), tonumber(r.reason), tonumber(r.key), tonumber(r.time),
             ffi_str(r.digest, 32), ffi_str(r.id.ptr, r.id.len), ffi_str(r.meta.ptr, r.meta.len), r)
    end
    C.up42wh_journal_reader_stats(reader, journal_stats)
    local stats = stats_table(journal_stats)
    stats.torn_cut = 0
    if cut_torn and stats.torn_bytes > 0 then
        errno_out[0] = 0
        rc = tonumber(C.up42wh_journal_reader_cut_torn(reader, size_out, errno_out))
        if rc ~= OK then
            return nil, failure("cannot cut the torn tail of a segment in " .. dir, rc, errno_out[0])
        end
        stats.torn_cut = tonumber(size_out[0])
    end
    return stats
end

-- Whether the user `uid` (group `gid`) may create files in `dir`: true, or nil, err.
function _M.journal_check_dir(dir, uid, gid)
    errno_out[0] = 0
    local rc = tonumber(C.up42wh_journal_check_dir(dir, #dir, uid, gid, errno_out))
    if rc ~= OK then
        return nil, failure(dir, rc, errno_out[0])
    end
    return true
end

-- Who nginx's workers run as: this process's user, or for a master started as root, nobody (the
-- project's nginx.conf names no `user`, and nginx's default is nobody). uid, gid and a name; nil
-- when that user is unknown here.
pcall(ffi.cdef, "unsigned int geteuid(void); unsigned int getegid(void);")
function _M.worker_identity()
    local euid = tonumber(ffi.C.geteuid())
    if euid ~= 0 then
        return euid, tonumber(ffi.C.getegid()), "user " .. euid
    end
    local f = io.open("/etc/passwd", "r")
    if not f then
        return nil
    end
    for line in f:lines() do
        local uid, gid = line:match("^nobody:[^:]*:(%d+):(%d+):")
        if uid then
            f:close()
            return tonumber(uid), tonumber(gid), "nobody"
        end
    end
    f:close()
    return nil
end

-- The journal's key mark (journal.keys: src/journal.rs): { reserved, last, clean } or false when
-- there is none yet; nil, err when it cannot be read.
local key_mark = ffi_new("up42wh_key_mark")
function _M.journal_mark_read(dir)
    errno_out[0] = 0
    local rc = tonumber(C.up42wh_journal_mark_read(dir, #dir, key_mark, errno_out))
    if rc ~= OK then
        if errno_out[0] == 84 then -- EILSEQ: the library's word for a file that is not a mark
            return nil, dir .. "/journal.keys is damaged"
        end
        return nil, failure("cannot read " .. dir .. "/journal.keys", rc, errno_out[0])
    end
    if key_mark.present == 0 then
        return false
    end
    return { reserved = tonumber(key_mark.reserved), last = tonumber(key_mark.last),
             clean = key_mark.clean == 1 }
end

-- Writes the key mark, synced, before it returns true; nil, err otherwise.
function _M.journal_mark_write(dir, reserved, last, clean)
    key_mark.reserved, key_mark.last, key_mark.clean, key_mark.present = reserved, last or 0, clean and 1 or 0, 1
    errno_out[0] = 0
    local rc = tonumber(C.up42wh_journal_mark_write(dir, #dir, key_mark, errno_out))
    if rc ~= OK then
        return nil, failure("cannot write " .. dir .. "/journal.keys", rc, errno_out[0])
    end
    return true
end

-- The journal's segments and bytes on disk (segments, first_segment, last_segment, bytes).
function _M.journal_usage(dir)
    errno_out[0] = 0
    local rc = tonumber(C.up42wh_journal_usage(dir, #dir, journal_stats, errno_out))
    if rc ~= OK then
        return nil, failure("cannot list the journal in " .. dir, rc, errno_out[0])
    end
    return stats_table(journal_stats)
end

function _M.journal_remove_segment(dir, segment)
    errno_out[0] = 0
    local rc = tonumber(C.up42wh_journal_remove_segment(dir, #dir, segment, errno_out))
    if rc ~= OK then
        return nil, failure("cannot remove " .. segment_path(dir, segment), rc, errno_out[0])
    end
    return true
end

-- One delivery's path (src/ffi/deliver.rs): `deliver` verifies and reads it, writes its envelope,
-- claims its id in the replay index and writes the store's record, in one call; the store puts
-- the record under a key, then `deliver_commit` appends it to the journal and marks the id stored
-- (or `deliver_cancel` gives the claim up). A worker's handle holds the delivery in between.
local deliver_args = ffi_new("up42wh_deliver_args")
deliver_args.size = ffi.sizeof("up42wh_deliver_args")
local delivered = ffi_new("up42wh_delivered")
delivered.size = ffi.sizeof("up42wh_delivered")
local committed = ffi_new("up42wh_committed")
committed.size = ffi.sizeof("up42wh_committed")
local up42wh_deliver, up42wh_deliver_commit = C.up42wh_deliver, C.up42wh_deliver_commit
local up42wh_deliver_cancel = C.up42wh_deliver_cancel

-- The worker's handle, made at its first delivery, its buffers for bodies of up to 1 MiB (the
-- default max_body; a larger body grows them once).
local deliverer
local function handle()
    if not deliverer then
        local out = ffi_new("up42wh_deliverer *[1]")
        local rc = tonumber(C.up42wh_deliverer_new(1024 * 1024, out))
        if rc ~= OK then
            error("up42wh_deliverer_new: " .. _M.result_message(rc))
        end
        deliverer = ffi_gc(out[0], C.up42wh_deliverer_free)
    end
    return deliverer
end

-- Verifies and reads a delivery as up42wh_receive_message does, for the sender `s` (its name,
-- verified_by and id_prefix) and, with `index`, claims its id: the reused `up42wh_delivered`
-- struct (delivery, envelope, record; read it before anything yields) and the claim's name
-- ("new", "duplicate", "id_conflict", "in_flight", "full"; nil without an index), or nil, the
-- result name and its message. The worker's handle holds the delivery and its claim
-- until deliver_commit, deliver_cancel or the next deliver (which gives up a claim left).
function _M.deliver(ring, r, now, options, s, index, pending_ttl)
    fill_request(r)
    set_slice(deliver_args.sender, s.name)
    set_slice(deliver_args.verified_by, s.verified_by)
    set_slice(deliver_args.id_prefix, s.id_prefix)
    deliver_args.index, deliver_args.pending_ttl = index, pending_ttl or 0
    local rc = tonumber(up42wh_deliver(handle(), ring, message_req, now, options.cdata, deliver_args, delivered))
    if rc ~= OK then
        return nil, _M.result_name(rc), _M.result_message(rc)
    end
    return delivered, _M.CLAIM[tonumber(delivered.claim)]
end

-- The envelope of a delivered struct, as a string.
function _M.delivered_envelope(dd)
    return ffi_str(dd.envelope.ptr, dd.envelope.len)
end

-- Stores the delivery the worker's handle holds under `key`: with `journal` (a writer) appends its record,
-- synced when `sync`, then marks its id stored. The segment's size (0 without a journal) and
-- whether the claim was still this worker's; or nil, err, and whether the record may be in the
-- file all the same (with `sync`: written, then the sync failed).
function _M.deliver_commit(key, journal, sync, body, now)
    local rc = tonumber(up42wh_deliver_commit(handle(), key, journal, sync == true, body, #body, now, committed))
    if rc ~= OK then
        local errno = journal and tonumber(C.up42wh_journal_errno(journal))
        return nil, failure("cannot append to " .. tostring(path_of[journal]), rc, errno), sync == true
    end
    return tonumber(committed.segment_size), committed.kept
end

-- Gives up the claim the worker's handle holds; after a commit, takes the stored id back.
function _M.deliver_cancel()
    up42wh_deliver_cancel(handle())
end

-- The replay index (src/index.rs): every delivery id stored within the replay horizon, in a file
-- the master maps before it forks the workers, who share it without a lock. A claim's struct is
-- reused: a store claims, writes and commits (or cancels) without yielding in between.
local claim = ffi_new("up42wh_claim")
local index_stats = ffi_new("up42wh_index_stats")
local opened_out = ffi_new("uint32_t[1]")
local up42wh_index_claim = C.up42wh_index_claim
local up42wh_index_cancel = C.up42wh_index_cancel
local OPENED = { "existing", "created", "replaced" }
_M.CLAIM = { "new", "duplicate", "id_conflict", "in_flight", "full" }

-- The index at `path` for `capacity` ids over `horizon` seconds, and how it was found
-- ("existing", "created", "replaced": damaged, of another version or of other settings); or nil,
-- err.
function _M.index_open(file, capacity, horizon)
    local out = ffi_new("up42wh_index *[1]")
    errno_out[0] = 0
    local rc = tonumber(C.up42wh_index_open(file, #file, capacity, horizon, out, opened_out, errno_out))
    if rc ~= OK then
        return nil, failure("cannot open the replay index " .. file, rc, errno_out[0])
    end
    return ffi_gc(out[0], C.up42wh_index_free), OPENED[tonumber(opened_out[0])]
end

-- What the claim call returned `rc` found.
local function claimed(rc)
    if rc ~= OK then
        return nil, _M.result_message(rc)
    end
    return _M.CLAIM[claim.outcome]
end

-- Claims delivery `id` (its body's SHA-256 `digest`, 32 bytes) at `now`: "new" (then commit or
-- cancel before anything yields), "duplicate", "id_conflict", "in_flight" or "full".
function _M.index_claim(index, id, digest, now, pending_ttl)
    return claimed(up42wh_index_claim(index, id, #id, digest, now, pending_ttl, claim))
end

-- Gives the last claim up: a retry may claim the id again.
function _M.index_cancel(index)
    up42wh_index_cancel(index, claim)
end

-- Remembers an id stored at `time`, as a rebuild from the journal does: "added", "known",
-- "past_horizon" or "full" (its window is fuller than the capacity allows: it was lowered).
local INSERTED = { "added", "known", "past_horizon", "full" }
local insert_out = ffi_new("uint32_t[1]")
function _M.index_insert(index, id, digest, time, now)
    local rc = C.up42wh_index_insert(index, id, #id, digest, time, now, insert_out)
    if rc ~= OK then
        return nil, _M.result_message(rc)
    end
    return INSERTED[insert_out[0]]
end

-- What the index holds at `now` (ids, per_window, capacity, oldest, window_secs, bytes).
local window_held, window_limit = ffi_new("uint64_t[1]"), ffi_new("uint64_t[1]")

function _M.index_usage(index, now)
    if C.up42wh_index_usage(index, now, index_stats) ~= OK then
        return nil
    end
    local u = {}
    for _, k in ipairs{ "ids", "per_window", "capacity", "oldest", "window_secs", "bytes" } do
        u[k] = tonumber(index_stats[k])
    end
    if C.up42wh_index_window(index, now, window_held, window_limit) == OK then
        u.window_ids, u.window_limit = tonumber(window_held[0]), tonumber(window_limit[0])
    end
    return u
end

-- The SHA-256 of the body from a verified or delivery struct, as 32 bytes.
function _M.body_sha256(v)
    return ffi_str(v.body_sha256, 32)
end

return _M
