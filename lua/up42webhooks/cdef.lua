-- The C declarations of include/up42webhooks.h for LuaJIT's ffi.cdef, which has no preprocessor.
-- Generated from the header by `UP42WH_BLESS=1 cargo test --test abi header::`; do not edit.
return [==[
enum up42wh_result
 {
  UP42WH_RESULT_OK = 0,
  UP42WH_RESULT_NULL_ARGUMENT = 1,
  UP42WH_RESULT_PANIC = 2,
  UP42WH_RESULT_INVALID_ARGUMENT = 3,
  UP42WH_RESULT_BODY_TOO_LARGE = 4,
  UP42WH_RESULT_MALFORMED_HEADERS = 5,
  UP42WH_RESULT_HEADER_TOO_LARGE = 6,
  UP42WH_RESULT_MISSING_SIGNATURE_INPUT = 7,
  UP42WH_RESULT_MALFORMED_SIGNATURE_INPUT = 8,
  UP42WH_RESULT_UNKNOWN_LABEL = 9,
  UP42WH_RESULT_MISSING_SIGNATURE = 10,
  UP42WH_RESULT_MALFORMED_SIGNATURE = 11,
  UP42WH_RESULT_SIGNATURE_LABEL_MISSING = 12,
  UP42WH_RESULT_UNSUPPORTED_ALG = 13,
  UP42WH_RESULT_UNSUPPORTED_COMPONENT = 14,
  UP42WH_RESULT_DUPLICATE_COMPONENT = 15,
  UP42WH_RESULT_MISSING_COMPONENT = 16,
  UP42WH_RESULT_MISSING_CREATED = 17,
  UP42WH_RESULT_DIGEST_NOT_COVERED = 18,
  UP42WH_RESULT_DIGEST_MISSING = 19,
  UP42WH_RESULT_MALFORMED_DIGEST = 20,
  UP42WH_RESULT_UNSUPPORTED_DIGEST = 21,
  UP42WH_RESULT_DIGEST_MISMATCH = 22,
  UP42WH_RESULT_SIGNATURE_MISMATCH = 23,
  UP42WH_RESULT_STALE = 24,
  UP42WH_RESULT_FUTURE = 25,
  UP42WH_RESULT_EXPIRED = 26,
  UP42WH_RESULT_MALFORMED_TIMESTAMP = 27,
  UP42WH_RESULT_UNKNOWN_KEY = 28,
  UP42WH_RESULT_ALG_MISMATCH = 29,
  UP42WH_RESULT_NON_ASCII_BASE = 30,
  UP42WH_RESULT_REQUIRED_COMPONENT_NOT_COVERED = 31,
  UP42WH_RESULT_JOURNAL_IO = 32,
  UP42WH_RESULT_JOURNAL_END = 33,
  UP42WH_RESULT_TOO_MANY_SIGNATURES = 34,
  UP42WH_RESULT_NOT_JSON_OBJECT = 35,
  UP42WH_RESULT_DUPLICATE_FIELD = 36,
  UP42WH_RESULT_INVALID_FIELD = 37,
  UP42WH_RESULT_STRUCT_SIZE = 38,
};
typedef uint32_t up42wh_result;
enum up42wh_digest
 {
  UP42WH_DIGEST_SHA256_UP42 = 0,
  UP42WH_DIGEST_SHA256 = 1,
  UP42WH_DIGEST_SHA512 = 2,
};
typedef uint32_t up42wh_digest;
enum up42wh_scheme
 {
  UP42WH_SCHEME_RFC9421 = 1,
  UP42WH_SCHEME_STANDARD_WEBHOOKS = 2,
  UP42WH_SCHEME_GITHUB = 3,
  UP42WH_SCHEME_STRIPE = 4,
  UP42WH_SCHEME_UP42 = 5,
};
typedef uint32_t up42wh_scheme;
enum up42wh_key_kind
 {
  UP42WH_KEY_KIND_HMAC = 1,
  UP42WH_KEY_KIND_ED25519_PEM = 2,
  UP42WH_KEY_KIND_STANDARD_WEBHOOKS = 3,
};
typedef uint32_t up42wh_key_kind;
enum up42wh_record_kind
 {
  UP42WH_RECORD_KIND_EVENT = 1,
  UP42WH_RECORD_KIND_DROP = 2,
  UP42WH_RECORD_KIND_CANCEL = 3,
  UP42WH_RECORD_KIND_POSITION = 4,
};
typedef uint32_t up42wh_record_kind;
enum up42wh_claim_outcome
 {
  UP42WH_CLAIM_OUTCOME_NEW = 1,
  UP42WH_CLAIM_OUTCOME_DUPLICATE = 2,
  UP42WH_CLAIM_OUTCOME_CONFLICT = 3,
  UP42WH_CLAIM_OUTCOME_IN_FLIGHT = 4,
  UP42WH_CLAIM_OUTCOME_FULL = 5,
};
typedef uint32_t up42wh_claim_outcome;
enum up42wh_index_opened
 {
  UP42WH_INDEX_OPENED_EXISTING = 1,
  UP42WH_INDEX_OPENED_CREATED = 2,
  UP42WH_INDEX_OPENED_REPLACED = 3,
};
typedef uint32_t up42wh_index_opened;
enum up42wh_insert_outcome
 {
  UP42WH_INSERT_OUTCOME_ADDED = 1,
  UP42WH_INSERT_OUTCOME_KNOWN = 2,
  UP42WH_INSERT_OUTCOME_PAST_HORIZON = 3,
  UP42WH_INSERT_OUTCOME_FULL = 4,
};
typedef uint32_t up42wh_insert_outcome;
enum up42wh_id_source
 {
  UP42WH_ID_SOURCE_MESSAGE_ID = 0,
  UP42WH_ID_SOURCE_WEBHOOK_ID = 1,
  UP42WH_ID_SOURCE_GITHUB_DELIVERY = 2,
  UP42WH_ID_SOURCE_EVENT_ID = 3,
  UP42WH_ID_SOURCE_NONCE = 4,
  UP42WH_ID_SOURCE_BODY_SHA256 = 5,
};
typedef uint32_t up42wh_id_source;
enum up42wh_entry_field
 {
  UP42WH_ENTRY_FIELD_JSON = 1,
  UP42WH_ENTRY_FIELD_EVENT = 2,
  UP42WH_ENTRY_FIELD_STATUS = 3,
  UP42WH_ENTRY_FIELD_LIVE = 4,
  UP42WH_ENTRY_FIELD_SENDER = 5,
  UP42WH_ENTRY_FIELD_ID = 6,
  UP42WH_ENTRY_FIELD_TIME = 7,
  UP42WH_ENTRY_FIELD_ENVELOPE = 8,
};
typedef uint32_t up42wh_entry_field;
typedef struct up42wh_deliverer up42wh_deliverer;
typedef struct up42wh_index up42wh_index;
typedef struct up42wh_journal up42wh_journal;
typedef struct up42wh_journal_reader up42wh_journal_reader;
typedef struct up42wh_key up42wh_key;
typedef struct up42wh_keyring up42wh_keyring;
typedef struct {
  const uint8_t *ptr;
  size_t len;
} up42wh_slice;
typedef struct {
  up42wh_slice method;
  up42wh_slice scheme;
  up42wh_slice authority;
  up42wh_slice target;
  up42wh_slice raw_headers;
  up42wh_slice body;
} up42wh_request;
typedef struct {
  uint32_t scheme;
  up42wh_slice label;
  up42wh_slice required;
  int64_t max_age;
  int64_t max_future;
  size_t max_body;
  bool require_created;
  bool require_digest;
  int64_t timestamp_max_age;
  bool refuse_unsigned_times;
} up42wh_message_options;
typedef struct {
  size_t size;
  up42wh_slice sender;
  up42wh_slice verified_by;
  up42wh_slice id_prefix;
  const up42wh_index *index;
  int64_t pending_ttl;
} up42wh_deliver_args;
typedef struct {
  uint32_t key_index;
  int32_t live;
  int64_t time;
  uint8_t body_sha256[32];
  bool line_breaks;
  size_t id_len;
  size_t event_len;
  size_t status_len;
  uint8_t id[320];
  size_t id_at;
  uint32_t id_source;
  uint8_t event[128];
  uint8_t status[128];
  uint32_t unsigned_times;
} up42wh_delivery;
typedef struct {
  size_t size;
  uint32_t claim;
  const up42wh_delivery *delivery;
  up42wh_slice envelope;
  up42wh_slice record;
} up42wh_delivered;
typedef struct {
  size_t size;
  uint64_t segment_size;
  bool kept;
} up42wh_committed;
typedef struct {
  uint32_t outcome;
  uint32_t table;
  uint64_t slot;
  uint64_t deadline;
} up42wh_claim;
typedef struct {
  uint64_t ids;
  uint64_t per_window;
  uint64_t capacity;
  uint64_t oldest;
  uint64_t window_secs;
  uint64_t bytes;
} up42wh_index_stats;
typedef struct {
  uint32_t kind;
  uint32_t reason;
  uint64_t key;
  int64_t time;
  uint8_t digest[32];
  up42wh_slice id;
  up42wh_slice meta;
  up42wh_slice body;
} up42wh_record;
typedef struct {
  uint32_t segments;
  uint32_t first_segment;
  uint32_t last_segment;
  uint64_t bytes;
  uint64_t records;
  uint64_t corrupt;
  uint64_t torn_bytes;
  uint64_t max_key;
  int64_t max_time;
} up42wh_journal_stats;
typedef struct {
  uint64_t reserved;
  uint64_t last;
  uint32_t clean;
  uint32_t present;
} up42wh_key_mark;
typedef struct {
  int64_t time;
  bool has_time;
  int64_t expires;
  bool has_expires;
  uint32_t key_index;
  uint32_t alg;
  uint8_t body_sha256[32];
  uint8_t nonce[64];
  size_t nonce_len;
  uint32_t unsigned_times;
} up42wh_message_verified;
typedef struct {
  uint8_t *ptr;
  size_t cap;
  size_t len;
} up42wh_buffer;
typedef struct {
  uint32_t at;
  uint32_t len;
} up42wh_span;
typedef struct {
  size_t size;
  int64_t time;
  bool pending;
  bool compressed;
  bool has_envelope;
  up42wh_span event;
  up42wh_span status;
  up42wh_span live;
  up42wh_span envelope;
  up42wh_span line;
} up42wh_record_fields;
typedef struct {
  const uint8_t *label;
  size_t label_len;
  const uint8_t *keyid;
  size_t keyid_len;
  uint32_t digest;
  bool byte_sequence;
} up42wh_sign_options;
typedef struct {
  uint8_t content_digest[128];
  size_t content_digest_len;
  uint8_t signature_input[320];
  size_t signature_input_len;
  uint8_t signature[128];
  size_t signature_len;
} up42wh_signed;
typedef struct {
  const uint8_t *label;
  size_t label_len;
  int64_t max_age;
  int64_t max_future;
  size_t max_body;
} up42wh_options;
typedef struct {
  const uint8_t *name;
  size_t name_len;
  const uint8_t *value;
  size_t value_len;
} up42wh_header;
typedef struct {
  int64_t created;
  int64_t expires;
  bool has_expires;
  uint32_t key_index;
  uint8_t body_sha256[32];
} up42wh_verified;
const char *up42wh_version(void);
const char *up42wh_result_name(uint32_t code);
const char *up42wh_result_message(uint32_t code);
up42wh_result up42wh_deliverer_new(size_t max_body, up42wh_deliverer **out);
void up42wh_deliverer_free(up42wh_deliverer *h);
up42wh_result up42wh_deliver(up42wh_deliverer *h,
                             const up42wh_keyring *ring,
                             const up42wh_request *req,
                             int64_t now,
                             const up42wh_message_options *opts,
                             const up42wh_deliver_args *args,
                             up42wh_delivered *out);
up42wh_result up42wh_deliver_commit(up42wh_deliverer *h,
                                    uint64_t key,
                                    const up42wh_journal *journal,
                                    bool sync,
                                    const uint8_t *body,
                                    size_t body_len,
                                    int64_t now,
                                    up42wh_committed *out);
up42wh_result up42wh_deliver_cancel(up42wh_deliverer *h);
up42wh_result up42wh_index_open(const uint8_t *path,
                                size_t path_len,
                                uint64_t capacity,
                                uint64_t horizon,
                                up42wh_index **out,
                                uint32_t *opened,
                                int32_t *errno_out);
void up42wh_index_free(up42wh_index *index);
up42wh_result up42wh_index_claim(const up42wh_index *index,
                                 const uint8_t *id,
                                 size_t id_len,
                                 const uint8_t *body_sha256,
                                 int64_t now,
                                 int64_t pending_ttl,
                                 up42wh_claim *out);
up42wh_result up42wh_index_commit(const up42wh_index *index,
                                  const up42wh_claim *claim,
                                  int64_t now,
                                  bool *kept);
up42wh_result up42wh_index_cancel(const up42wh_index *index, const up42wh_claim *claim);
up42wh_result up42wh_index_insert(const up42wh_index *index,
                                  const uint8_t *id,
                                  size_t id_len,
                                  const uint8_t *body_sha256,
                                  int64_t time,
                                  int64_t now,
                                  uint32_t *outcome);
up42wh_result up42wh_index_usage(const up42wh_index *index, int64_t now, up42wh_index_stats *out);
up42wh_result up42wh_index_window(const up42wh_index *index,
                                  int64_t now,
                                  uint64_t *held,
                                  uint64_t *limit);
up42wh_result up42wh_journal_open(const uint8_t *dir,
                                  size_t dir_len,
                                  uint32_t segment,
                                  up42wh_journal **out,
                                  int32_t *errno_out);
up42wh_result up42wh_journal_append(up42wh_journal *j,
                                    const up42wh_record *record,
                                    uint64_t *size_out);
up42wh_result up42wh_journal_sync(up42wh_journal *j);
int32_t up42wh_journal_errno(const up42wh_journal *j);
void up42wh_journal_free(up42wh_journal *j);
up42wh_result up42wh_journal_reader_open(const uint8_t *dir,
                                         size_t dir_len,
                                         uint32_t segment,
                                         up42wh_journal_reader **out,
                                         int32_t *errno_out);
up42wh_result up42wh_journal_reader_next(up42wh_journal_reader *r, up42wh_record *out);
up42wh_result up42wh_journal_reader_stats(const up42wh_journal_reader *r,
                                          up42wh_journal_stats *out);
void up42wh_journal_reader_free(up42wh_journal_reader *r);
up42wh_result up42wh_journal_remove_segment(const uint8_t *dir,
                                            size_t dir_len,
                                            uint32_t segment,
                                            int32_t *errno_out);
up42wh_result up42wh_journal_usage(const uint8_t *dir,
                                   size_t dir_len,
                                   up42wh_journal_stats *out,
                                   int32_t *errno_out);
up42wh_result up42wh_journal_reader_cut_torn(up42wh_journal_reader *r,
                                             uint64_t *cut_out,
                                             int32_t *errno_out);
up42wh_result up42wh_journal_mark_read(const uint8_t *dir,
                                       size_t dir_len,
                                       up42wh_key_mark *out,
                                       int32_t *errno_out);
up42wh_result up42wh_journal_mark_write(const uint8_t *dir,
                                        size_t dir_len,
                                        const up42wh_key_mark *mark,
                                        int32_t *errno_out);
up42wh_result up42wh_journal_check_dir(const uint8_t *dir,
                                       size_t dir_len,
                                       uint32_t uid,
                                       uint32_t gid,
                                       int32_t *errno_out);
up42wh_result up42wh_keyring_new(up42wh_keyring **out);
void up42wh_keyring_free(up42wh_keyring *ring);
up42wh_result up42wh_keyring_add(up42wh_keyring *ring,
                                 uint32_t kind,
                                 const uint8_t *keyid,
                                 size_t keyid_len,
                                 const uint8_t *material,
                                 size_t material_len,
                                 uint32_t *out_index);
up42wh_result up42wh_keyring_keyid(const up42wh_keyring *ring, uint32_t index, up42wh_slice *out);
up42wh_result up42wh_message_options_init(up42wh_message_options *opts, uint32_t scheme);
const char *up42wh_scheme_name(uint32_t scheme);
up42wh_result up42wh_verify_message(const up42wh_keyring *ring,
                                    const up42wh_request *req,
                                    int64_t now,
                                    const up42wh_message_options *opts,
                                    up42wh_message_verified *out);
up42wh_result up42wh_receive_message(const up42wh_keyring *ring,
                                     const up42wh_request *req,
                                     int64_t now,
                                     const up42wh_message_options *opts,
                                     const uint8_t *id_prefix,
                                     size_t id_prefix_len,
                                     up42wh_delivery *out);
up42wh_result up42wh_delivery_envelope(const up42wh_delivery *delivery,
                                       const uint8_t *sender,
                                       size_t sender_len,
                                       const uint8_t *scheme,
                                       size_t scheme_len,
                                       up42wh_buffer *out);
up42wh_result up42wh_delivery_record(const up42wh_delivery *delivery,
                                     const uint8_t *envelope,
                                     size_t envelope_len,
                                     const uint8_t *body,
                                     size_t body_len,
                                     int64_t time,
                                     up42wh_buffer *out);
up42wh_result up42wh_record_write(int64_t time,
                                  const uint8_t *meta,
                                  size_t meta_len,
                                  const uint8_t *line,
                                  size_t line_len,
                                  up42wh_buffer *out);
up42wh_result up42wh_record_line(const uint8_t *block,
                                 size_t block_len,
                                 up42wh_buffer *out);
up42wh_result up42wh_record_read(const uint8_t *record,
                                 size_t record_len,
                                 up42wh_record_fields *out);
const char *up42wh_entry_field_name(uint32_t field);
up42wh_result up42wh_sign_options_init(up42wh_sign_options *opts);
up42wh_result up42wh_sign(const up42wh_key *key,
                          const uint8_t *body,
                          size_t body_len,
                          int64_t created,
                          const up42wh_sign_options *opts,
                          up42wh_signed *out);
up42wh_result up42wh_options_init(up42wh_options *opts);
up42wh_result up42wh_key_new(const up42wh_slice *secrets, size_t count, up42wh_key **out);
void up42wh_key_free(up42wh_key *key);
up42wh_result up42wh_verify(const up42wh_key *key,
                            const up42wh_header *headers,
                            size_t headers_len,
                            const uint8_t *body,
                            size_t body_len,
                            int64_t now,
                            const up42wh_options *opts,
                            up42wh_verified *out);
up42wh_result up42wh_verify_raw(const up42wh_key *key,
                                const uint8_t *raw_headers,
                                size_t raw_headers_len,
                                const uint8_t *body,
                                size_t body_len,
                                int64_t now,
                                const up42wh_options *opts,
                                up42wh_verified *out);
up42wh_result up42wh_receive(const up42wh_key *key,
                             const uint8_t *raw_headers,
                             size_t raw_headers_len,
                             const uint8_t *body,
                             size_t body_len,
                             int64_t now,
                             const up42wh_options *opts,
                             up42wh_delivery *out);
up42wh_result up42wh_check_timestamp(const uint8_t *ts,
                                     size_t ts_len,
                                     int64_t now,
                                     const up42wh_options *opts,
                                     int64_t *out_unix);
]==]
