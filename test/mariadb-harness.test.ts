// Proves the MariaDB harness on each peer set: a server from the template answers SQL through
// exec() and takes password logins on loopback, committed rows survive SIGKILL and restart on the
// same port, two servers run at once, a start that fails says why with mariadbd's log, and
// stop() leaves neither a process nor a temp dir. Start times (template copy vs a fresh
// mariadb-install-db) are reported as comments.

import t from 'tap'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { eachPeerSet } from './harness/peer-set.js'
import { startMariadb, type Mariadb } from './harness/mariadb.js'
import { isAlive } from './harness/process.js'

const EXPECTED_MAJOR = { debian12: '10.11', debian13: '11.8' } as const

/** The server's temp dir, from its socket path in the log ("socket: '/tmp/mailhostd-mariadb-XXXX/mysqld.sock'"). */
function tempDirOf(db: Mariadb): string {
  const m = /socket: '([^']+)\/mysqld\.sock'/.exec(db.output())
  if (!m) throw new Error(`no socket path in mariadbd's log:\n${db.output()}`)
  return m[1]!
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now()
  const v = await f()
  return [v, Math.round(performance.now() - started)]
}

eachPeerSet(t, async (t, set) => {
  const servers: Mariadb[] = []
  t.teardown(() => Promise.all(servers.map((s) => s.stop())))
  const start = async (opts: Parameters<typeof startMariadb>[0] = {}) => {
    const [db, ms] = await timed(() => startMariadb({ set, ...opts }))
    servers.push(db)
    return [db, ms] as const
  }

  // The first start of a test process makes the template; the next ones only copy it.
  const [db, firstMs] = await start()

  t.test('the release of the set, password login on loopback, rows through exec()', async (t) => {
    t.match(db.version, new RegExp(`^${EXPECTED_MAJOR[set.id].replace('.', '\\.')}\\.\\d+$`), `MariaDB ${db.version}`)
    t.equal(db.host, '127.0.0.1')
    t.equal(db.url, `mysql://${db.user}:${db.password}@127.0.0.1:${db.port}/${db.database}`)
    await db.exec(`
      CREATE TABLE mailbox (username VARCHAR(255) PRIMARY KEY, transport VARCHAR(255), note TEXT);
      INSERT INTO mailbox VALUES ('alice@example.org', 'lmtp:mx1', 'tab\\there, newline\\nthere, back\\\\slash'),
                                 ('bob@example.org', 'lmtp:mx2', NULL);
    `)
    t.same(await db.exec('SELECT username, transport, note FROM mailbox ORDER BY username'), [
      ['alice@example.org', 'lmtp:mx1', 'tab\there, newline\nthere, back\\slash'],
      ['bob@example.org', 'lmtp:mx2', 'NULL'],
    ])
    // The client with the user and password of the URL, over TCP: what a driver will do.
    const viaTcp = await set.mustRun('mariadb', [
      '--no-defaults', '--protocol=tcp', `--host=${db.host}`, `--port=${db.port}`, `--user=${db.user}`, `--password=${db.password}`,
      '--batch', '--skip-column-names', db.database, '-e', 'SELECT CURRENT_USER(), @@bind_address, @@character_set_server',
    ])
    t.equal(viaTcp.stdout, `${db.user}@%\t127.0.0.1\tutf8mb4\n`)
    const wrong = await set.run('mariadb', [
      '--no-defaults', '--protocol=tcp', `--host=${db.host}`, `--port=${db.port}`, `--user=${db.user}`, '--password=wrong', '-e', 'SELECT 1',
    ])
    t.not(wrong.code, 0)
    t.match(wrong.stderr, /Access denied/)
    await t.rejects(db.exec('SELECT no_such_column FROM mailbox'), /Unknown column 'no_such_column'/)
    const url = await db.createDatabase('postfixadmin')
    t.equal(url, `mysql://${db.user}:${db.password}@127.0.0.1:${db.port}/postfixadmin`)
    t.same(await db.exec('SELECT DATABASE()', { database: 'postfixadmin' }), [['postfixadmin']])
  })

  t.test('SIGKILL, then restart on the same port: every committed row is there', async (t) => {
    await db.exec('CREATE TABLE hostcntrl (pw_name CHAR(40), pw_domain CHAR(67), host CHAR(64), PRIMARY KEY (pw_name, pw_domain))')
    for (let i = 0; i < 20; i++) await db.exec(`INSERT INTO hostcntrl VALUES ('u${i}', 'example.org', 'mx${i % 3}')`)
    const before = db.pid
    await db.kill()
    t.notOk(isAlive(before), 'mariadbd is gone')
    await t.rejects(db.exec('SELECT 1'), /Can't connect/, 'nothing answers while it is down')
    const [, restartMs] = await timed(() => db.restart())
    t.not(db.pid, before, 'a new process')
    t.same(await db.exec('SELECT COUNT(*), COUNT(DISTINCT host) FROM hostcntrl'), [['20', '3']], 'after crash recovery')
    t.same(await db.exec('SELECT COUNT(*) FROM mailbox'), [['2']], 'and the earlier table')
    t.comment(`${set.id}: restart after SIGKILL (crash recovery) ${restartMs} ms`)
    const clean = db.pid
    await db.restart()
    t.notOk(isAlive(clean), 'restart() stops a running server first')
    t.same(await db.exec('SELECT COUNT(*) FROM hostcntrl'), [['20']])
  })

  t.test('two servers at once, each with its own port and data', async (t) => {
    const [other, templateMs] = await start()
    t.not(other.port, db.port)
    await other.exec('CREATE TABLE only_here (x INT)')
    t.same(await other.exec("SHOW TABLES LIKE 'mailbox'"), [], 'a copy of the template, not of the other server')
    t.same(await db.exec("SHOW TABLES LIKE 'only_here'"), [])
    t.same(await db.exec("SHOW TABLES LIKE 'mailbox'"), [['mailbox']])

    const [fresh, freshMs] = await start({ fresh: true })
    t.same(await fresh.exec('SELECT CURRENT_USER()'), [['root@localhost']])
    t.comment(`${set.id}: MariaDB ${db.version} start: first (makes the template) ${firstMs} ms, from the template ${templateMs} ms, fresh mariadb-install-db ${freshMs} ms`)

    const dir = tempDirOf(other)
    const pid = other.pid
    await other.stop()
    t.notOk(isAlive(pid), 'stopped by PID')
    t.notOk(existsSync(dir), 'temp dir removed')
    await other.stop()
    await t.rejects(other.restart(), /stopped for good/)
    t.same(await db.exec('SELECT 1'), [['1']], 'the first one still runs')
  })

  t.test('a start that fails names mariadbd and shows its log', async (t) => {
    const busy = createServer()
    busy.listen(0, '127.0.0.1')
    await once(busy, 'listening')
    t.teardown(() => new Promise<void>((r) => busy.close(() => r())))
    const port = (busy.address() as { port: number }).port
    await t.rejects(startMariadb({ set, port }), {
      message: new RegExp(`mariadbd \\(${set.id}\\) exited \\(code \\d+\\) before accepting connections on 127\\.0\\.0\\.1:${port}\\. mariadbd's log:\\n[^]*Address already in use`),
    })
  })
})
