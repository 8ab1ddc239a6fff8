-- mailhostd Lua passdb for a Dovecot IMAP/POP3 front proxy (Dovecot 2.3.19 or later).
--
-- For every login Dovecot calls auth_password_verify(req, password); this script asks
-- mailhostd (POST /v1/dovecot/passdb/verify) whether the password is right and which backend
-- holds the mailbox, and hands Dovecot the proxy fields (proxy, host, port, nopassword,
-- destuser). Password-less lookups (LMTP proxying, `doveadm auth lookup`) come through
-- auth_passdb_lookup(req) and POST /v1/dovecot/passdb/lookup. See docs/login.md for the
-- answers and docs/dovecot.md for installing it.
--
-- Install: /etc/dovecot/mailhostd.lua, referenced from dovecot/proxy-lua.conf. Edit the four
-- settings below. Needs the packages dovecot-auth-lua and lua-cjson.
--
-- Failure model: anything other than a well-formed answer from mailhostd (an HTTP status other
-- than 200, a transport error 9000-9008, a body that is not the expected JSON) is
-- PASSDB_RESULT_INTERNAL_FAILURE, which the client sees as a temporary failure
-- ("NO [UNAVAILABLE]"). It is never "unknown user": a mailhostd outage must not look like a
-- wrong password, or mail clients drop the stored password and users get locked out.
--
-- Return values follow what both 2.3 and 2.4 accept: a table of fields on success, a reason
-- string otherwise (2.4 rejects a table with a failure code; 2.3 logs the string).

-- Settings ------------------------------------------------------------------------------------

-- mailhostd's HTTP listener (listen.http). An IP literal: Dovecot 2.3.19's HTTP client resolves
-- host names through a relative socket path that does not exist in auth-workers.
local MAILHOSTD_URL = "http://127.0.0.1:10090"

-- A file holding mailhostd's login.secret (one line; a trailing newline is ignored). Readable by
-- the auth and auth-worker processes, nobody else: root:dovecot, mode 0640.
local SECRET_FILE = "/etc/dovecot/mailhostd.secret"

-- mailhostd's login.secretHeader.
local SECRET_HEADER = "X-Auth-Key"

-- Per request, in milliseconds. mailhostd answers within lookup.deadline (3 s by default), but
-- holds the answer to a braked client for its tarpit time (up to login.brakes.maxTarpit, 15 s
-- by default), whatever the password. Keep this above deadline + maxTarpit: a shorter timeout
-- turns every long tarpit into a temporary failure, and a user braked after their own typos
-- could then not log in even with the right password until login.brakes.window has passed.
-- A hung mailhostd holds an auth-worker (30 at most by default) this long.
local TIMEOUT_MSECS = 20000

-- ---------------------------------------------------------------------------------------------

local json = require("cjson")

local client = nil
local secret = nil

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

function script_init()
  local err
  secret, err = read_secret(SECRET_FILE)
  if secret == nil then
    -- Dovecot refuses to start the auth service with this message: a missing secret is a
    -- configuration error, not something to discover at the first login.
    error("mailhostd.lua: " .. err)
  end
  -- One client per process: each auth-worker keeps a keep-alive connection to mailhostd.
  -- max_attempts=1: a login is not retried behind the user's back (the brakes count attempts).
  client = dovecot.http.client({
    request_timeout_msecs = TIMEOUT_MSECS,
    request_absolute_timeout_msecs = TIMEOUT_MSECS + 1000,
    max_attempts = 1,
    user_agent = "dovecot-mailhostd-lua/1",
  })
  return 0
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
  return string.format("host=%s port=%s destuser=%s", tostring(fields.host), tostring(fields.port),
    tostring(fields.destuser))
end

-- POSTs body to path and maps the answer to (result, table or reason).
local function call(req, path, body, verified)
  if client == nil then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mailhostd: script_init did not run"
  end
  local ok, resp = pcall(function()
    local r = client:request({ url = MAILHOSTD_URL .. path, method = "POST" })
    r:add_header("Content-Type", "application/json")
    r:add_header(SECRET_HEADER, secret)
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
    if fields == nil or fields.host == nil then
      return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mailhostd: " .. path .. " answered ok without usable fields"
    end
    if verified then
      -- The password was checked by mailhostd and Dovecot needs no password field. Dovecot's
      -- auth cache (auth_cache_size > 0) stores an answer with nopassword as "no password
      -- needed" and would then let ANY password in for that user until auth_cache_ttl; without
      -- it, Dovecot caches a hash of the password that was accepted.
      fields.nopassword = nil
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

function auth_password_verify(req, password)
  return call(req, "/v1/dovecot/passdb/verify", {
    user = req.user,
    password = password,
    service = req.service,
    remoteIp = req.remote_ip,
    localIp = req.local_ip,
    session = req.session,
  }, true)
end

-- No password involved: LMTP proxying, doveadm. mailhostd answers fields (with nopassword) only
-- for those services; for imap or pop3 a lookup means a non-plaintext mechanism and is refused.
function auth_passdb_lookup(req)
  return call(req, "/v1/dovecot/passdb/lookup", {
    user = req.user,
    service = req.service,
    remoteIp = req.remote_ip,
    session = req.session,
  }, false)
end
