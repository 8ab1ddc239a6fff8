import t from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { validateConfig } from '../../src/config/load.js'
import { ConfigError, ErrorCodes } from '../../src/errors.js'
import { createLogger, silentLogger } from '../../src/log.js'
import { LATEST_VERSION, migrate, schemaVersion } from '../../src/store/migrate.js'
import { openStore } from '../../src/store/open.js'
import { openPglite } from '../../src/store/pglite.js'
import { describePostgresUrl, openPostgres } from '../../src/store/postgres.js'
import { freePort } from '../harness/ports.js'
import { startPostgres } from '../harness/postgres.js'

/** A real pino logger whose output the test can read back. */
function capturingLogger() {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString())
      done()
    },
  })
  return { logger: createLogger('debug', sink), text: () => lines.join('') }
}

const opts = (url: string, over: Partial<{ statementTimeoutMs: number; connectTimeoutMs: number }> = {}) => ({
  url,
  poolSize: 4,
  connectTimeoutMs: 2000,
  statementTimeoutMs: 5000,
  ...over,
})

void t.test('describePostgresUrl names the server without credentials', (t) => {
  t.equal(describePostgresUrl('postgres://u:s3cret@db.example:6432/mail'), 'db.example:6432/mail')
  t.equal(describePostgresUrl('postgresql://u@127.0.0.1/mail'), '127.0.0.1:5432/mail')
  t.throws(() => describePostgresUrl('postgres://u:s3cret@[bad'), ConfigError)
  try {
    describePostgresUrl('postgres://u:s3cret@[bad')
  } catch (e) {
    t.notMatch((e as Error).message, /s3cret/, 'the message does not echo the URL')
  }
  t.end()
})

void t.test('unreachable server: a coded error that holds no password, promptly', async (t) => {
  const port = await freePort()
  const { logger, text } = capturingLogger()
  await t.rejects(openPostgres(opts(`postgres://postgres:hunter2-secret@127.0.0.1:${port}/mailhostd`), logger), {
    code: ErrorCodes.STORE_UNAVAILABLE,
    message: new RegExp(`^cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}/mailhostd`),
  })
  await openPostgres(opts(`postgres://postgres:hunter2-secret@127.0.0.1:${port}/mailhostd`), logger).catch((e: Error) => {
    t.notMatch(e.message, /hunter2/)
  })
  t.notMatch(text(), /hunter2/)
})

peerTest(t, 'against a real server', async (t, set) => {
  const server = await startPostgres({ set })
  t.teardown(() => server.stop())

  await t.test('query, exec and transactions', async (t) => {
    const store = await openPostgres(opts(server.url), silentLogger)
    t.teardown(() => store.close())
    t.equal(store.kind, 'postgres')
    await store.exec('create table tx_probe (n int primary key); insert into tx_probe values (1)')
    t.same((await store.query('select n from tx_probe where n = $1', [1])).rows, [{ n: 1 }])
    await t.rejects(store.exec('insert into tx_probe values (7); select no_such_column'))
    t.same((await store.query('select n from tx_probe where n = 7')).rows, [], 'a failing exec is all or nothing')

    const got = await store.transaction(async (tx) => {
      await tx.query('insert into tx_probe values ($1)', [2])
      return (await tx.query<{ c: number }>('select count(*)::int as c from tx_probe')).rows[0]!.c
    })
    t.equal(got, 2, 'the transaction sees its own writes and returns its value')

    await t.rejects(
      store.transaction(async (tx) => {
        await tx.query('insert into tx_probe values ($1)', [3])
        throw new Error('changed my mind')
      }),
      { message: 'changed my mind' },
    )
    await t.rejects(store.transaction((tx) => tx.query('insert into tx_probe values ($1)', [1])), { code: '23505' })
    t.same((await store.query('select n from tx_probe order by n')).rows, [{ n: 1 }, { n: 2 }], 'rolled back twice')
    await store.close()
    await store.close()
  })

  await t.test('every session carries the statement timeout', async (t) => {
    const store = await openPostgres(opts(server.url, { statementTimeoutMs: 300 }), silentLogger)
    t.teardown(() => store.close())
    t.same((await store.query('show statement_timeout')).rows, [{ statement_timeout: '300ms' }])
    await t.rejects(store.query('select pg_sleep(5)'), { code: '57014' }, 'the server cancels a slow statement')
    await t.rejects(store.transaction((tx) => tx.query('select pg_sleep(5)')), { code: '57014' })
    t.same((await store.query('select 1 as ok')).rows, [{ ok: 1 }], 'the pool is still usable')
  })

  await t.test('an idle connection dying is logged, not fatal, and the pool recovers', async (t) => {
    const { logger, text } = capturingLogger()
    const store = await openPostgres(opts(server.url), logger)
    t.teardown(() => store.close())
    await Promise.all([1, 2, 3].map(() => store.query('select pg_sleep(0.05)')))
    await server.kill()
    // The pool's idle clients see their sockets close; without an 'error' handler this crashes.
    for (let i = 0; i < 100 && !text().includes('idle PostgreSQL connection lost'); i++) await sleep(20)
    t.match(text(), /idle PostgreSQL connection lost/)
    await t.rejects(store.query('select 1'))
    await server.restart()
    t.same((await store.query('select 1 as ok')).rows, [{ ok: 1 }])
    t.notMatch(text(), new RegExp(server.password), 'the password never reaches the log')
    t.match(text(), /connected to PostgreSQL/)
  })
})

peerTest(t, 'openStore picks the engine and migrates', async (t, set) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailhostd-open-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  await t.test('no URL: PGlite in dataDir', async (t) => {
    const store = await openStore(validateConfig({ dataDir: dir }), silentLogger)
    t.teardown(() => store.close())
    t.equal(store.kind, 'pglite')
    t.equal(await schemaVersion(store), LATEST_VERSION)
  })

  await t.test('a newer schema is refused at open, and the store is closed again', async (t) => {
    const prep = await openPglite(join(dir, 'future'))
    await migrate(prep)
    await prep.query(`insert into schema_migrations (version, name) values (99, 'future')`)
    await prep.close()
    await t.rejects(openStore(validateConfig({ dataDir: join(dir, 'future') }), silentLogger), {
      code: ErrorCodes.STORE_MIGRATION,
    })
    const again = await openPglite(join(dir, 'future'))
    t.equal(await schemaVersion(again), 99, 'untouched')
    await again.close()
  })

  await t.test('URL: PostgreSQL, credentials kept out of the log', async (t) => {
    const server = await startPostgres({ set })
    t.teardown(() => server.stop())
    const { logger, text } = capturingLogger()
    const store = await openStore(validateConfig({ store: { url: server.url, connectTimeout: '2s' } }), logger)
    t.teardown(() => store.close())
    t.equal(store.kind, 'postgres')
    t.equal(await schemaVersion(store), LATEST_VERSION)
    t.match(text(), /schema migrated/)
    t.notMatch(text(), new RegExp(server.password))
  })
})
