// The configuration file's schema: one place for every key, its type and its default.
// Durations are written the Postfix way ("500ms", "3s", "2m", "1h") or as plain seconds.

import { Type, type Static } from 'typebox'
import { TOKEN_NAME_PATTERN } from '../admin/tokens.js'
import { DEFAULT_IPV6_PREFIX, MAX_IPV6_PREFIX, MIN_IPV6_PREFIX } from '../auth/ip-key.js'
import { MAIL_HOST_PATTERN, MAIL_HOST_RULE } from '../resolve/mail-host.js'
import { BACKEND_ID_PATTERN, BACKEND_KINDS, PROBED_SERVICES, ROUTE_STYLES } from '../resolve/vocabulary.js'
import { Literals } from './literals.js'

const Duration = (def: string, description: string) =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: '^\\s*\\d+\\s*(ms|s|m|h|d)?\\s*$' })], {
    default: def,
    description,
  })

const Port = Type.Integer({ minimum: 0, maximum: 65535 })

const Listener = (port: number) =>
  Type.Object(
    {
      host: Type.String({ default: '127.0.0.1', minLength: 1 }),
      port: Type.Integer({ minimum: 0, maximum: 65535, default: port }),
    },
    { additionalProperties: false, default: {} },
  )

export const MAP_NAMES = ['transport', 'recipient', 'alias'] as const
/** `local/<backend-id>` is the fourth, parameterised map. */
export const LOCAL_MAP_PREFIX = 'local/'

const LdapAttributes = Type.Object(
  {
    address: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      default: ['mail', 'mailLocalAddress'],
      description: 'Attributes holding addresses the entry owns (each value is one address).',
    }),
    canonical: Type.String({ default: 'mail', description: "The mailbox's primary address." }),
    mailHost: Type.String({ default: 'mailHost', minLength: 1 }),
    routingAddress: Type.String({
      default: 'mailRoutingAddress',
      description: 'Rewrite target; on an entry without mailHost it makes the entry an alias.',
    }),
    status: Type.String({
      default: 'mailhostdAccountStatus',
      description: "Account status attribute; '' when the directory has none (all active).",
    }),
    sendAs: Type.String({
      default: 'mailhostdSendAs',
      description: "Extra sender addresses the account may use; '' when the directory has none.",
    }),
  },
  { additionalProperties: false, default: {} },
)

const Ldap = Type.Object(
  {
    url: Type.String({ pattern: '^ldaps?://', description: 'ldap://host:port or ldaps://host:port' }),
    bindDN: Type.String({ default: '' }),
    bindPassword: Type.String({ default: '' }),
    baseDN: Type.String({ minLength: 1 }),
    scope: Type.Union([Type.Literal('sub'), Type.Literal('one'), Type.Literal('base')], { default: 'sub' }),
    filter: Type.String({
      default: '(objectClass=inetLocalMailRecipient)',
      description: 'Extra filter ANDed with the address match.',
    }),
    attributes: LdapAttributes,
    disabledValues: Type.Array(Type.String(), { default: ['disabled', 'inactive', 'locked'] }),
    passwordCheck: Type.Union([Type.Literal('bind'), Type.Literal('compare')], {
      default: 'bind',
      description: "bind: bind as the user's DN on a separate connection; compare: read userPassword and verify the hash here.",
    }),
    passwordAttribute: Type.String({ default: 'userPassword', description: 'Read in compare mode only.' }),
    admin: Type.Optional(
      Type.Object(
        {
          bindDN: Type.String({ minLength: 1, description: 'An account allowed to add, modify and delete mail entries.' }),
          bindPassword: Type.String({ default: '' }),
          accountDN: Type.String({
            default: 'uid={address},ou=people,{baseDN}',
            description: 'DN of a new account entry; {address}, {local}, {domain} and {baseDN} are filled in (values escaped).',
          }),
          objectClasses: Type.Array(Type.String({ minLength: 1 }), {
            minItems: 1,
            default: ['inetOrgPerson', 'inetLocalMailRecipient', 'mailhostdAccount'],
          }),
        },
        { additionalProperties: false },
      ),
    ),
    pollInterval: Duration('30s', 'How often to ask for entries whose modifyTimestamp moved (changes made behind mailhostd); 0 turns it off.'),
    connections: Type.Integer({ minimum: 1, maximum: 32, default: 2 }),
    passwordConnections: Type.Integer({
      minimum: 1,
      maximum: 32,
      default: 4,
      description: 'passwordCheck bind: connections kept for binding as users, one check at a time each; further checks wait their turn.',
    }),
    timeout: Duration('2s', 'Per-operation timeout.'),
    connectTimeout: Duration('1s', 'TCP/TLS connect timeout.'),
    startTLS: Type.Boolean({ default: false }),
    tls: Type.Object(
      {
        caFile: Type.Optional(Type.String()),
        rejectUnauthorized: Type.Boolean({ default: true }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
)

// The directory variants, one per directory type (directory.type), each validated by its driver
// (src/directory/drivers/): a type's keys are required exactly when that type is chosen.

/** directory.type when the file names none. */
export const DEFAULT_DIRECTORY_TYPE = 'sql'

/** The store's own tables (accounts, account_addresses). */
export const SqlDirectoryConfig = Type.Object({ type: Type.Literal('sql') }, { additionalProperties: false })

export const LdapDirectoryConfig = Type.Object({ type: Type.Literal('ldap'), ldap: Ldap }, { additionalProperties: false })

const Domain = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    aliasFor: Type.Optional(Type.String({ minLength: 1, description: 'Makes this an alias domain of that domain.' })),
    catchAll: Type.Optional(
      Type.Array(Type.String({ minLength: 3 }), { minItems: 1, description: 'Targets for unknown local parts.' }),
    ),
  },
  { additionalProperties: false },
)

const ServicePort = (dflt?: number) => Type.Integer({ minimum: 1, maximum: 65535, ...(dflt === undefined ? {} : { default: dflt }) })

const PoolMember = Type.Object(
  {
    id: Type.String({ pattern: BACKEND_ID_PATTERN, description: 'Names the member in local/<id> maps, health records and URLs; never a backend id.' }),
    address: Type.String({ minLength: 2, description: 'IP address (IPv4 or IPv6).' }),
    ports: Type.Optional(
      Type.Object(
        {
          lmtp: Type.Optional(ServicePort()),
          smtp: Type.Optional(ServicePort()),
          imap: Type.Optional(ServicePort()),
          pop3: Type.Optional(ServicePort()),
        },
        { additionalProperties: false, description: "Where they differ from the pool's ports." },
      ),
    ),
    weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Share of new pins (absent: left as the admin API set it, 1 for a new member).' })),
  },
  { additionalProperties: false },
)

/** The Dovecot director's user expiry, whose job a pool's pins do. */
export const DEFAULT_PIN_FOR = '15m'

const Backend = Type.Object(
  {
    id: Type.String({ pattern: BACKEND_ID_PATTERN }),
    kind: Literals(BACKEND_KINDS, { default: 'host', description: 'host: one server; pool: members on shared storage, each user pinned to one (docs/pools.md).' }),
    mailHosts: Type.Array(Type.String({ pattern: MAIL_HOST_PATTERN, description: MAIL_HOST_RULE }), {
      default: [],
      description: 'mailHost values that mean this backend (the id always does).',
    }),
    address: Type.Optional(Type.String({ minLength: 2, description: 'IP address (IPv4 or IPv6); a host only.' })),
    route: Literals(ROUTE_STYLES, { default: 'lmtp' }),
    ports: Type.Object(
      {
        lmtp: ServicePort(24),
        smtp: ServicePort(25),
        imap: ServicePort(143),
        pop3: ServicePort(110),
      },
      { additionalProperties: false, default: {}, description: "A host's ports; a pool's members' unless a member sets its own." },
    ),
    members: Type.Optional(Type.Array(PoolMember, { minItems: 1, description: 'A pool only: its members.' })),
    pinFor: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1 }), Type.String({ pattern: '^\\s*\\d+\\s*(ms|s|m|h|d)?\\s*$' })], {
        description: `A pool only: how long a user stays on a member after their last lookup (default ${DEFAULT_PIN_FOR}).`,
      }),
    ),
    director: Type.Optional(
      Type.Object(
        {
          tag: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$', description: "The director_tag naming this pool in a Dovecot 2.3 director's director_mail_servers." }),
          address: Type.String({ minLength: 2, description: "The director ring's IP address: mail (LMTP) and nginx go there, with the pool's ports." }),
        },
        { additionalProperties: false, description: 'A pool only: login answers hand the member choice to a Dovecot 2.3 director.' },
      ),
    ),
  },
  { additionalProperties: false },
)

const RateLimit = Type.Object(
  {
    by: Type.Union([Type.Literal('sasl_username'), Type.Literal('client_address')]),
    messages: Type.Integer({ minimum: 1 }),
    window: Duration('1h', 'Sliding window the message count applies to.'),
    ipv6Prefix: Type.Integer({
      minimum: MIN_IPV6_PREFIX,
      maximum: MAX_IPV6_PREFIX,
      default: DEFAULT_IPV6_PREFIX,
      description: 'For by: client_address, IPv6 clients are counted per prefix of this length; IPv4-mapped IPv6 counts as IPv4.',
    }),
  },
  { additionalProperties: false },
)

const RuleSet = Type.Object(
  {
    recipients: Type.Object(
      {
        check: Type.Boolean({ default: true, description: 'Reject unknown recipients in served domains (550 5.1.1).' }),
        disabled: Type.Union([Type.Literal('accept'), Type.Literal('reject')], {
          default: 'accept',
          description: 'Recipients whose mailboxes are all disabled: accept, or reject with 550 5.2.1.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    senderLogin: Type.Object(
      {
        check: Type.Boolean({
          default: true,
          description: 'When sasl_username is set, the sender must be an address that login owns (553 5.7.1).',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    rateLimits: Type.Array(RateLimit, { default: [] }),
  },
  { additionalProperties: false, default: {} },
)

const Brake = (tarpitAfter: number, refuseAfter: number) =>
  Type.Object(
    {
      tarpitAfter: Type.Integer({ minimum: 1, default: tarpitAfter, description: 'Failures in the window before answers slow down.' }),
      refuseAfter: Type.Integer({ minimum: 1, default: refuseAfter, description: 'Failures in the window before attempts are refused.' }),
    },
    { additionalProperties: false, default: {} },
  )

const Login = Type.Object(
  {
    secret: Type.String({ default: '', description: 'Shared secret the proxies send in secretHeader; required for the login endpoints.' }),
    secretHeader: Type.String({ default: 'X-Auth-Key', minLength: 1 }),
    proxyField: Type.Union([Type.Literal('proxy'), Type.Literal('proxy_maybe')], { default: 'proxy' }),
    lookupMode: Type.Boolean({
      default: false,
      description: 'Answer password-less passdb lookups for every service (imap, pop3, ...), for Dovecot proxies in lookup mode whose backends check the passwords.',
    }),
    nginx: Type.Object(
      {
        maxAttempts: Type.Integer({ minimum: 1, default: 5, description: 'Auth-Wait is sent until Auth-Login-Attempt reaches this.' }),
        wait: Duration('3s', 'Auth-Wait on failures.'),
      },
      { additionalProperties: false, default: {} },
    ),
    brakes: Type.Object(
      {
        window: Duration('15m', 'Failures older than this are forgotten.'),
        ip: Brake(10, 30),
        account: Brake(5, 10),
        tarpit: Duration('2s', 'First tarpit delay; doubles with each further failure.'),
        maxTarpit: Duration('15s', 'Longest tarpit delay.'),
        ipv6Prefix: Type.Integer({
          minimum: MIN_IPV6_PREFIX,
          maximum: MAX_IPV6_PREFIX,
          default: DEFAULT_IPV6_PREFIX,
          description: 'IPv6 clients are counted per prefix of this length (one /64 is one host or LAN); IPv4-mapped IPv6 counts as IPv4.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    userdb: Type.Record(Type.String({ pattern: '^[a-z_]+$' }), Type.String(), {
      default: {},
      description: 'Static userdb fields for the dict userdb, with %u (user), %n (local part), %d (domain).',
    }),
  },
  { additionalProperties: false, default: {} },
)

export const PLACEMENT_POLICIES = ['random', 'weighted', 'least-used', 'domain'] as const
/** admin.readEndpoints: when /v1/lookup, /metrics and /v1/openapi.json need a token (src/http/read-access.ts). */
export const READ_ENDPOINTS = ['auto', 'token', 'open'] as const
export type ReadEndpoints = (typeof READ_ENDPOINTS)[number]
export const PASSWORD_SCHEMES = ['auto', 'ARGON2ID', 'SHA512-CRYPT', 'BLF-CRYPT', 'SSHA512'] as const

const AdminToken = Type.Object(
  {
    name: Type.String({ pattern: TOKEN_NAME_PATTERN, description: 'Who the token belongs to: the actor in the audit log.' }),
    role: Type.Union([Type.Literal('read'), Type.Literal('admin')]),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the token, hex (mailhostctl token new prints both).' }),
  },
  { additionalProperties: false },
)

/**
 * Variables of mailhostd's environment every move hook gets (when set): what a copy tool needs to
 * find programs, its home directory (ssh, doveadm config) and its locale. Nothing else is passed
 * unless admin.moves.hookEnvironment names it: the daemon's environment holds secrets.
 */
export const HOOK_BASE_ENVIRONMENT = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'] as const

const Admin = Type.Object(
  {
    tokens: Type.Array(AdminToken, { default: [] }),
    readEndpoints: Literals(READ_ENDPOINTS, {
      default: 'auto',
      description: 'Whether /v1/lookup, /metrics and /v1/openapi.json need a read or admin token: auto (unless listen.http is on loopback), token (always), open (never).',
    }),
    placement: Type.Object(
      {
        policy: Literals(PLACEMENT_POLICIES, { default: 'least-used', description: 'How a new account without an explicit backend is placed.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    passwordScheme: Literals(PASSWORD_SCHEMES, {
      default: 'auto',
      description: 'Scheme for new passwords; auto: ARGON2ID in SQL, SSHA512 in LDAP (slapd pw-sha2 binds with it).',
    }),
    idempotencyTtl: Duration('24h', 'How long an Idempotency-Key is remembered.'),
    moves: Type.Object(
      {
        hook: Type.Array(Type.String({ minLength: 1 }), {
          default: [],
          description: 'Command (argv) run per account to copy its mail; empty: no copy step.',
        }),
        settle: Duration('60s', 'After a move starts, its hook waits and complete is refused this long: Postfix may still deliver with a route it resolved before.'),
        hookTimeout: Duration('6h', 'A hook running longer is killed and the move marked failed.'),
        concurrency: Type.Integer({ minimum: 1, maximum: 64, default: 2, description: 'Hooks run at once per instance.' }),
        autoComplete: Type.Boolean({ default: false, description: 'Complete a move as soon as its copy succeeded.' }),
        hookEnvironment: Type.Array(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), {
          default: [],
          uniqueItems: true,
          description: `Further variables of mailhostd's environment the hook gets, by name, besides ${HOOK_BASE_ENVIRONMENT.join(', ')} and the MAILHOSTD_ variables of the move. Never one a *Env key names.`,
        }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
)

// Password hashing on worker threads (auth/password-pool.ts); read once at start.
const Passwords = Type.Object(
  {
    workers: Type.Integer({
      minimum: 0,
      maximum: 256,
      default: 0,
      description: 'Worker threads that check and hash Argon2, bcrypt and SHA-crypt passwords; 0: one per core (os.availableParallelism()).',
    }),
    maxQueue: Type.Integer({
      minimum: 0,
      default: 64,
      description: 'Password jobs that may wait for a worker; more get a temporary failure at once.',
    }),
    niceness: Type.Integer({
      minimum: 0,
      maximum: 19,
      default: 10,
      description: 'How much lower the worker threads\' priority is than the daemon\'s (a Linux nice increment): lookups get the cores first. 0: the same priority.',
    }),
  },
  { additionalProperties: false, default: {} },
)

export const ConfigSchema = Type.Object(
  {
    dataDir: Type.String({ default: './data', description: 'PGlite database and runtime files.' }),
    log: Type.Object(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
          { default: 'info' },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    store: Type.Object(
      {
        url: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'Unset: embedded PGlite.' })),
        poolSize: Type.Integer({ minimum: 1, maximum: 200, default: 10 }),
        connectTimeout: Duration('5s', 'pg connectionTimeoutMillis.'),
        statementTimeout: Duration('5s', 'Server-side statement_timeout for every session.'),
      },
      { additionalProperties: false, default: {} },
    ),
    directory: Type.Union([SqlDirectoryConfig, LdapDirectoryConfig], { default: { type: DEFAULT_DIRECTORY_TYPE } }),
    domains: Type.Array(Domain, { default: [] }),
    backends: Type.Array(Backend, { default: [] }),
    doveadm: Type.Optional(
      Type.Object(
        {
          port: Type.Integer({ minimum: 1, maximum: 65535, default: 8080, description: "The doveadm HTTP API's port on every backend and pool member (service doveadm, inet_listener http)." }),
          apiKey: Type.String({ minLength: 1, description: "The backends' doveadm_api_key; a secret (apiKeyFile, apiKeyEnv)." }),
          timeout: Duration('5s', 'A kick request gives up after this long.'),
        },
        { additionalProperties: false, description: "Where mailhostd kicks a user's live sessions (a pool's move-user with kick): Dovecot's doveadm HTTP API." },
      ),
    ),
    routing: Type.Object(
      {
        unknownMailHost: Type.String({
          default: 'smtp:[{mailHost}]:25',
          pattern: '^[a-z][a-z0-9_-]*:.*\\{mailHost\\}',
          description: 'Route for a mailHost that names no known backend.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    addresses: Type.Object(
      {
        extensionDelimiters: Type.String({ default: '+', description: "Like Postfix's recipient_delimiter." }),
        foldLocalPart: Type.Boolean({ default: true }),
      },
      { additionalProperties: false, default: {} },
    ),
    lookup: Type.Object(
      { deadline: Duration('3s', 'Answer (temporary failure at worst) within this time.') },
      { additionalProperties: false, default: {} },
    ),
    cache: Type.Object(
      {
        maxEntries: Type.Integer({ minimum: 1, default: 100000, description: 'Found answers kept (the stale reserve).' }),
        maxMisses: Type.Integer({
          minimum: 1,
          default: 10000,
          description: 'Answers without a mailbox kept (misses, held data errors), apart from the found answers, which they never push out.',
        }),
        ttl: Duration('2m', 'Freshness of found answers.'),
        negativeTtl: Duration('30s', 'Freshness of authoritative misses.'),
        maxStale: Duration('1h', 'Oldest answer served while the directory fails.'),
        warmup: Type.Boolean({ default: false, description: 'At start, load every mailbox address from the directory into the cache.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    health: Type.Object(
      {
        interval: Duration('5s', 'Probe every backend service this often; 0 turns probing off (every backend counts as up).'),
        timeout: Duration('2s', 'A probe without its banner within this time fails.'),
        rise: Type.Integer({ minimum: 1, default: 2, description: 'Successful probes in a row before a down service counts as up.' }),
        fall: Type.Integer({ minimum: 1, default: 3, description: 'Failed probes in a row before an up service counts as down.' }),
        services: Type.Array(Literals(PROBED_SERVICES), {
          default: [...PROBED_SERVICES],
          uniqueItems: true,
          description: "What to probe: delivery (the route's LMTP or SMTP port: 220 banner), imap (* OK), pop3 (+OK).",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    circuit: Type.Object(
      {
        failureThreshold: Type.Integer({ minimum: 1, default: 5 }),
        openFor: Duration('5s', 'How long to stop calling a failing directory.'),
      },
      { additionalProperties: false, default: {} },
    ),
    listen: Type.Object(
      {
        socketmap: Type.Union([Listener(10040), Type.Literal(false)], { default: {} }),
        tcpTable: Type.Array(
          Type.Object(
            { map: Type.String({ minLength: 1 }), host: Type.String({ default: '127.0.0.1' }), port: Port },
            { additionalProperties: false },
          ),
          {
            default: [
              { map: 'transport', port: 10041 },
              { map: 'recipient', port: 10042 },
            ],
          },
        ),
        http: Type.Union([Listener(10090), Type.Literal(false)], { default: {} }),
        policy: Type.Union([Listener(10045), Type.Literal(false)], { default: {} }),
        dict: Type.Union(
          [
            Type.Object(
              {
                path: Type.String({ default: 'dict.sock', minLength: 1, description: 'Relative to dataDir unless absolute; no ":" allowed.' }),
                mode: Type.String({ default: '0660', pattern: '^0?[0-7]{3}$' }),
              },
              { additionalProperties: false },
            ),
            Type.Literal(false),
          ],
          { default: false, description: 'Dovecot dict protocol (v3) on a unix socket.' },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    login: Login,
    admin: Admin,
    passwords: Passwords,
    policy: Type.Object(
      {
        defaultRuleSet: Type.String({ default: 'default', description: 'Used when policy_context is empty.' }),
        ruleSets: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]+$' }), RuleSet, {
          // The shipped Postfix fragments use policy_context=mx and =submission; with these
          // defaults they work as pasted. A configured ruleSets replaces this whole map.
          default: { default: {}, mx: {}, submission: {} },
          description: 'Named rule sets; policy_context picks one.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    limits: Type.Object(
      {
        maxConnections: Type.Integer({
          minimum: 1,
          default: 1024,
          description: 'Per listener (HTTP included). When full, the oldest connection that has not completed a request makes room; with none, new connections are closed.',
        }),
        idleTimeout: Duration('30m', 'Close a connection idle this long between requests.'),
        requestTimeout: Duration('10s', 'A started request must be complete within this time.'),
        maxRequestBytes: Type.Integer({ minimum: 512, maximum: 1048576, default: 16384 }),
        shutdownGrace: Duration('10s', 'On SIGTERM, time for in-flight requests to finish.'),
        // Issue 13: connections that hold slots without asking anything.
        maxConnectionsPerClient: Type.Integer({
          minimum: 1,
          default: 512,
          description: 'Per listener and client address; keep it above the Postfix processes of one host that use the maps.',
        }),
        firstRequestTimeout: Duration('5s', 'A connection must complete its first request within this time of connecting (HTTP: its request headers). More than 0.'),
        httpIdleTimeout: Duration('72s', 'HTTP: close a connection without traffic this long (keep-alive between requests, or a client not reading its answer). More than 0.'),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
)

export type Config = Static<typeof ConfigSchema>
export type LdapConfig = Static<typeof Ldap>
/** One of the directory variants; a driver narrows it to its own (src/directory/drivers/). */
export type DirectoryConfig = Config['directory']
export type DomainConfig = Static<typeof Domain>
export type BackendConfig = Static<typeof Backend>
export type PoolMemberConfig = Static<typeof PoolMember>
export type RuleSetConfig = Static<typeof RuleSet>
export type RateLimitConfig = Static<typeof RateLimit>
export type LoginConfig = Static<typeof Login>
export type AdminConfig = Static<typeof Admin>
export type LdapAdminConfig = NonNullable<LdapConfig['admin']>
export type PlacementPolicy = (typeof PLACEMENT_POLICIES)[number]
export type HealthConfig = Config['health']
export type DurationValue = Config['lookup']['deadline']

/**
 * Config paths whose values are secrets. Each may instead be given as `<key>File` (a file whose
 * content, minus a trailing newline, is the value) or `<key>Env` (an environment variable name).
 */
export const SECRET_PATHS = [
  ['directory', 'ldap', 'bindPassword'],
  ['directory', 'ldap', 'admin', 'bindPassword'],
  ['store', 'url'],
  ['login', 'secret'],
  ['doveadm', 'apiKey'],
] as const
