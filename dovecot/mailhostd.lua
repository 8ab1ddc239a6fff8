-- mailhostd Lua passdb for a Dovecot IMAP/POP3 front proxy: one script for Dovecot 2.3.19+ and
-- Dovecot 2.4, installed verbatim as /etc/dovecot/mailhostd.lua. Never edit it: its settings
-- come from the Dovecot configuration (below). Needs the packages dovecot-auth-lua and lua-cjson.
--
-- For every login Dovecot calls auth_password_verify(req, password). In mode "verify" (the
-- default) this script asks mailhostd (POST /v1/dovecot/passdb/verify) whether the password is
-- right and which backend holds the mailbox. In mode "lookup" it asks only where the mailbox is
-- (POST /v1/dovecot/passdb/lookup): the password never leaves Dovecot, and the backend checks it
-- when the proxy logs in there with it. Either way Dovecot gets the proxy fields (proxy, host,
-- port, destuser; nopassword in lookup mode). Password-less lookups (LMTP proxying,
-- `doveadm auth lookup`) come through auth_passdb_lookup(req). See docs/login.md for mailhostd's
-- answers and docs/dovecot.md for installing this.
--
-- Settings. Each is taken from the first of: the passdb's lua_settings { } (Dovecot 2.4, see
-- dovecot/proxy-lua.conf; they reach script_init(args)), the environment (Dovecot 2.3, whose Lua
-- passdb accepts no settings of its own: dovecot/2.3/proxy-lua.conf sets them with
-- import_environment), the default.
--   lua_settings   environment              default
--   url            MAILHOSTD_URL            http://127.0.0.1:10090   mailhostd's listen.http
--   secret_file    MAILHOSTD_SECRET_FILE    /etc/dovecot/mailhostd.secret
--   secret_header  MAILHOSTD_SECRET_HEADER  X-Auth-Key               mailhostd's login.secretHeader
--   timeout        MAILHOSTD_TIMEOUT        20s                      per request: 20s, 20000ms, 20
--   mode           MAILHOSTD_MODE           verify                   verify or lookup
--
-- Failure model: anything other than a well-formed answer from mailhostd (an HTTP status other
-- than 200, a transport error 9000-9008, a body that is not the expected JSON) is
-- PASSDB_RESULT_INTERNAL_FAILURE, which the client sees as a temporary failure
-- ("NO [UNAVAILABLE]"). It is never "unknown user": a mailhostd outage must not look like a
-- wrong password, or mail clients drop the stored password and users get locked out.
--
-- Return values follow what both 2.3 and 2.4 accept: a table of fields on success, a reason
-- string otherwise (2.4 rejects a table with a failure code, and since 2.4.1 a string with OK).
-- Nothing here logs a password or the secret.

local json = require("cjson")

local USER_AGENT = "dovecot-mailhostd-lua/2"

local DEFAULTS = {
  url = "http://127.0.0.1:10090",
  secret_file = "/etc/dovecot/mailhostd.secret",
  secret_header = "X-Auth-Key",
  timeout = "20s",
  mode = "verify",
}

local config = nil
local client = nil
local secret = nil

-- lua_settings, then the environment, then the default.
local function setting(args, name)
  local v = type(args) == "table" and args[name] or nil
  if v == nil or v == "" then
    v = os.getenv("MAILHOSTD_" .. string.upper(name))
  end
  if v == nil or v == "" then
    v = DEFAULTS[name]
  end
  return v
end

-- "20s", "20000ms" or "20" (seconds) to milliseconds; nil when it is none of these.
local function parse_timeout(text)
  local n, unit = string.match(text, "^%s*(%d+)%s*(%a*)%s*$")
  n = tonumber(n)
  if n == nil or n == 0 then
    return nil
  end
  if unit == "" or unit == "s" or unit == "secs" then
    return n * 1000
  elseif unit == "ms" or unit == "msecs" then
    return n
  end
  return nil
end

local function read_secret(path)
  local f, err = io.open(path, "rb")
  if f == nil then
    return nil, "cannot open " .. path .. ": " .. tostring(err)
  end
  local text = f:read("a")
  f:close()
  -- Same rule as mailhostd's login.secretFile: one trailing newline is not part of the secret.
  text = (text or ""):gsub("\r?\n$", "")
  if text == "" then
    return nil, path .. " is empty"
  end
  return text, nil
end

-- One client per process: each auth-worker keeps a keep-alive connection to mailhostd.
-- request_max_attempts / max_attempts = 1: a login is not retried behind the user's back (the
-- brakes count attempts).
local function new_client(timeout_ms)
  -- Dovecot 2.3's names. 2.3 ignores keys it does not know, so these must come first: 2.4 looks
  -- each key up as http_client_<key>, raises an error for these, and gets its own names below.
  local ok, c = pcall(dovecot.http.client, {
    request_timeout_msecs = timeout_ms,
    request_absolute_timeout_msecs = timeout_ms + 1000,
    max_attempts = 1,
    user_agent = USER_AGENT,
  })
  if ok then
    return c
  end
  -- Dovecot 2.4's names; time values need units there.
  return dovecot.http.client({
    request_timeout = timeout_ms .. "ms",
    request_absolute_timeout = (timeout_ms + 1000) .. "ms",
    request_max_attempts = 1,
    user_agent = USER_AGENT,
  })
end

-- Dovecot 2.3 calls it without arguments and needs the 0; 2.4 passes lua_settings and ignores
-- the return value. error() stops the auth service with the message, in both: a wrong setting or
-- a missing secret is a configuration error, not something to discover at the first login.
function script_init(args)
  local c = {
    url = string.gsub(setting(args, "url"), "/+$", ""),
    secret_file = setting(args, "secret_file"),
    secret_header = setting(args, "secret_header"),
    mode = setting(args, "mode"),
  }
  c.timeout_ms = parse_timeout(setting(args, "timeout"))
  if c.timeout_ms == nil then
    error("mailhostd.lua: timeout must be a positive number of seconds (20s, 20000ms or 20), not " .. setting(args, "timeout"))
  end
  if c.mode ~= "verify" and c.mode ~= "lookup" then
    error("mailhostd.lua: mode must be verify or lookup, not " .. c.mode)
  end
  if not string.match(c.url, "^https?://") then
    error("mailhostd.lua: url must start with http:// or https://, not " .. c.url)
  end
  local err
  secret, err = read_secret(c.secret_file)
  if secret == nil then
    error("mailhostd.lua: " .. err)
  end
  client = new_client(c.timeout_ms)
  config = c
  return 0
end

-- Dovecot 2.4 asks the script for its auth cache key (2.3 takes cache_key= from the passdb
-- args). Used only when auth_cache_size > 0; the answer depends on the service (the backend
-- port) and the user.
function auth_passdb_get_cache_key()
  return "%{protocol}%{user}"
end

local results = {
  mismatch = dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH,
  unknown = dovecot.auth.PASSDB_RESULT_USER_UNKNOWN,
  disabled = dovecot.auth.PASSDB_RESULT_USER_DISABLED,
  tempfail = dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE,
}

-- The passdb fields as Dovecot wants them: string keys and string values only.
local function copy_fields(fields)
  if type(fields) ~= "table" then
    return nil
  end
  local out = {}
  for k, v in pairs(fields) do
    if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
      return nil
    end
    out[k] = tostring(v)
  end
  return out
end

-- Describes an answer's fields for the debug log (never the request: it holds the password).
local function describe(fields)
  return string.format("host=%s port=%s director_tag=%s destuser=%s nopassword=%s", tostring(fields.host),
    tostring(fields.port), tostring(fields.director_tag), tostring(fields.destuser), tostring(fields.nopassword))
end

-- POSTs body to path and maps the answer to (result, table or reason). verified: mailhostd
-- checked the password, so the answer must not say that none is needed.
local function call(req, path, body, verified)
  if client == nil then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mailhostd: script_init did not run"
  end
  local ok, resp = pcall(function()
    local r = client:request({ url = config.url .. path, method = "POST" })
    r:add_header("Content-Type", "application/json")
    r:add_header(config.secret_header, secret)
    r:set_payload(json.encode(body))
    return r:submit()
  end)
  if not ok then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mailhostd: request failed: " .. tostring(resp)
  end

  local status = resp:status()
  if status ~= 200 then
    -- 9000-9008 are the HTTP client's own errors (9003 connect failed, 9008 timed out); the
    -- reason carries the details. For an HTTP error, mailhostd's problem+json names a code.
    local detail = resp:reason() or ""
    if status < 9000 then
      local pok, problem = pcall(json.decode, resp:payload() or "")
      if pok and type(problem) == "table" and type(problem.code) == "string" then
        detail = detail .. " (" .. problem.code .. ")"
      end
    end
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE,
      string.format("mailhostd: %s answered %d %s", path, status, detail)
  end

  local pok, answer = pcall(json.decode, resp:payload() or "")
  if not pok or type(answer) ~= "table" or type(answer.result) ~= "string" then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mailhostd: " .. path .. " answered unparseable JSON"
  end

  local reason = type(answer.reason) == "string" and answer.reason or answer.result
  if answer.result == "ok" then
    local fields = copy_fields(answer.fields)
    -- A pooled account behind a Dovecot 2.3 director (the pool's director.tag) comes without
    -- host: the director adds the member's address (dovecot/2.3/director.conf).
    if fields == nil or (fields.host == nil and fields.director_tag == nil) then
      return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mailhostd: " .. path .. " answered ok without usable fields"
    end
    if verified then
      -- Dovecot's auth cache (auth_cache_size > 0) stores an answer with nopassword as "no
      -- password needed" and would then let ANY password in for that user until auth_cache_ttl;
      -- without it, Dovecot caches a hash of the password that was accepted.
      fields.nopassword = nil
    else
      -- Nobody here checked a password: the backend does, with the one the user typed.
      fields.nopassword = "y"
    end
    req:log_debug("mailhostd: ok " .. describe(fields))
    return dovecot.auth.PASSDB_RESULT_OK, fields
  end
  local code = results[answer.result]
  if code == nil then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mailhostd: " .. path .. " answered unknown result " .. answer.result
  end
  req:log_debug("mailhostd: " .. answer.result .. ": " .. reason)
  return code, "mailhostd: " .. reason
end

-- Dovecot 2.4 removed req.service; req.protocol is its name there (2.3 has only service).
local function service(req)
  return req.protocol or req.service
end

local function lookup(req)
  return call(req, "/v1/dovecot/passdb/lookup", {
    user = req.user,
    service = service(req),
    remoteIp = req.remote_ip,
    localIp = req.local_ip,
    session = req.session,
    -- Tells mailhostd this proxy is in lookup mode: with its login.lookupMode off that is a
    -- configuration mismatch, answered as a temporary failure instead of a wrong password.
    mode = (config ~= nil and config.mode == "lookup") and "lookup" or nil,
  }, false)
end

function auth_password_verify(req, password)
  if config ~= nil and config.mode == "lookup" then
    -- The password stays here; Dovecot hands it to the backend, which checks it.
    return lookup(req)
  end
  return call(req, "/v1/dovecot/passdb/verify", {
    user = req.user,
    password = password,
    service = service(req),
    remoteIp = req.remote_ip,
    localIp = req.local_ip,
    session = req.session,
  }, true)
end

-- No password involved: LMTP proxying, doveadm. mailhostd answers fields (with nopassword) only
-- for those services, unless its login.lookupMode is on; for imap or pop3 a lookup otherwise
-- means a non-plaintext mechanism and is refused.
function auth_passdb_lookup(req)
  return lookup(req)
end
