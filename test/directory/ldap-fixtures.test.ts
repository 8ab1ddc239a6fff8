// The LDAP fixtures and the slapd harness: both schema forms say the same thing and load, the
// demo passwords are Dovecot-compatible {SSHA512} that slapd accepts, the ACLs keep the service
// account read-only and away from passwords, and the harness really restarts and cleans up.

import t from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Attribute, Change, Client, InsufficientAccessError, InvalidCredentialsError } from 'ldapts'
import { isAlive, mustRun } from '../harness/process.js'
import { startSlapd } from '../harness/slapd.js'

const fixture = (name: string) => new URL(`../../fixtures/ldap/${name}`, import.meta.url).pathname
const DEMO_PASSWORDS: Record<string, string> = {
  'cn=mailhostd,ou=services,dc=example,dc=org': 'mailhostd-secret',
  'cn=mailhostd-admin,ou=services,dc=example,dc=org': 'mailhostd-admin-secret',
  'uid=alice,ou=people,dc=example,dc=org': 'wonderland',
  'uid=bob,ou=people,dc=example,dc=org': 'builder',
  'uid=carol,ou=people,dc=example,dc=org': 'carol-disabled',
}

/** The olc* schema values of a cn=config LDIF file, unfolded, without {n} ordering prefixes. */
function schemaValues(ldif: string): string[] {
  return ldif
    .replace(/\n /g, '')
    .split('\n')
    .filter((l) => /^olc(ObjectIdentifier|AttributeTypes|ObjectClasses):/.test(l))
    .map((l) => l.replace(/^(\w+): \{\d+\}/, '$1: ').replace(/\s+/g, ' '))
}

void t.test('the two schema forms load and agree', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mailhostd-schema-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))

  // cn=config form, the way an admin would add it: after the standard schemas.
  const bootstrap = 'dn: cn=config\nobjectClass: olcGlobal\ncn: config\n\ndn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n'
  const standard = ['core', 'cosine', 'inetorgperson', 'nis', 'misc'].map((s) => readFileSync(`/etc/ldap/schema/${s}.ldif`, 'utf8'))
  await writeFile(join(dir, 'config.ldif'), [bootstrap, ...standard, readFileSync(fixture('mailhostd.ldif'), 'utf8')].join('\n'))
  await mustRun('mkdir', [join(dir, 'ldif')])
  await mustRun('slapadd', ['-n0', '-F', join(dir, 'ldif'), '-l', join(dir, 'config.ldif')])
  await mustRun('slaptest', ['-F', join(dir, 'ldif')])
  const fromLdif = readFileSync(join(dir, 'ldif', 'cn=config', 'cn=schema', 'cn={5}mailhostd.ldif'), 'utf8')

  // slapd.conf form, converted by slaptest.
  await writeFile(join(dir, 'slapd.conf'), `include /etc/ldap/schema/core.schema\ninclude ${fixture('mailhostd.schema')}\n`)
  await mustRun('mkdir', [join(dir, 'conf')])
  await mustRun('slaptest', ['-f', join(dir, 'slapd.conf'), '-F', join(dir, 'conf')])
  const fromSchema = readFileSync(join(dir, 'conf', 'cn=config', 'cn=schema', 'cn={1}mailhostd.ldif'), 'utf8')

  const values = schemaValues(fromLdif)
  t.equal(values.length, 6, '3 OID macros, 2 attribute types, 1 object class')
  t.same(values, schemaValues(fromSchema), 'mailhostd.ldif and mailhostd.schema define the same schema')
  t.match(values.join('\n'), /NAME 'mailhostdAccountStatus'.*EQUALITY caseIgnoreMatch.*SINGLE-VALUE/)
  t.match(values.join('\n'), /NAME 'mailhostdSendAs'.*EQUALITY caseIgnoreIA5Match/)
  t.match(values.join('\n'), /NAME 'mailhostdAccount'.*AUXILIARY/)
})

void t.test('the OID arc is the documented UUID', async (t) => {
  for (const file of ['mailhostd.schema', 'mailhostd.ldif']) {
    const text = readFileSync(fixture(file), 'utf8')
    const uuid = /\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b/.exec(text)?.[1]
    t.ok(uuid, `${file} names its UUID`)
    const arc = `2.25.${BigInt(`0x${uuid!.replace(/-/g, '')}`).toString()}`
    t.match(text, new RegExp(`mailhostdOID\\s+${arc.replace(/\./g, '\\.')}\\n`), `${file}: ${arc}`)
  }
})

void t.test('demo passwords are Dovecot-compatible {SSHA512}', async (t) => {
  const ldif = readFileSync(fixture('demo.ldif'), 'utf8')
  const entries = ldif.split(/\n\n+/).filter((e) => e.includes('userPassword:'))
  t.equal(entries.length, Object.keys(DEMO_PASSWORDS).length)
  for (const entry of entries) {
    const dn = /^dn: (.*)$/m.exec(entry)![1]!
    const hash = /^userPassword: \{SSHA512\}(.*)$/m.exec(entry)?.[1]
    t.ok(hash, `${dn}: {SSHA512}`)
    const raw = Buffer.from(hash!, 'base64')
    const salt = raw.subarray(64)
    t.ok(salt.length >= 8, `${dn}: salt of ${salt.length} bytes`)
    const digest = createHash('sha512').update(DEMO_PASSWORDS[dn]!).update(salt).digest()
    t.ok(digest.equals(raw.subarray(0, 64)), `${dn}: sha512(password || salt) || salt`)
  }
})

peerTest(t, 'the slapd harness: demo data, ACLs, restart, clean-up', async (t, set) => {
  const slapd = await startSlapd({ set })
  t.teardown(() => slapd.stop())
  const client = () => new Client({ url: slapd.url, timeout: 5000, connectTimeout: 5000 })

  await t.test('every demo account binds with its password; wrong ones do not', async (t) => {
    for (const [dn, password] of Object.entries(DEMO_PASSWORDS)) {
      const c = client()
      await c.bind(dn, password)
      t.pass(`${dn} binds`)
      await c.unbind()
      await t.rejects(client().bind(dn, `${password}x`), InvalidCredentialsError)
    }
  })

  await t.test('the service account reads, but never passwords, and cannot write', async (t) => {
    const c = client()
    t.teardown(() => c.unbind())
    await c.bind(slapd.bindDN, slapd.bindPassword)
    const { searchEntries } = await c.search(slapd.baseDN, { filter: '(uid=alice)', attributes: ['*'] })
    t.equal(searchEntries.length, 1)
    t.equal(searchEntries[0]!['mailHost'], 'mx1.example.org')
    t.notOk('userPassword' in searchEntries[0]!, 'userPassword is not readable')
    const byPassword = await c.search(slapd.baseDN, { filter: '(userPassword=*)' })
    t.equal(byPassword.searchEntries.length, 0, 'nor searchable')
    const change = new Change({ operation: 'replace', modification: new Attribute({ type: 'mailHost', values: ['evil'] }) })
    await t.rejects(c.modify('uid=alice,ou=people,dc=example,dc=org', change), InsufficientAccessError)
  })

  await t.test('anonymous sees nothing by default', async (t) => {
    const c = client()
    t.teardown(() => c.unbind())
    const found = await c.search(slapd.baseDN, { filter: '(mail=*)' }).then(
      (r) => r.searchEntries.length,
      () => 0,
    )
    t.equal(found, 0)
  })

  await t.test('rootdn writes survive a restart; kill and pause work on the real process', async (t) => {
    await slapd.ldapadd(`dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: dave
cn: Dave
sn: Dave
mailLocalAddress: dave@example.org
mailHost: mx2.example.org
`)
    const first = slapd.pid
    await slapd.pause()
    t.equal(readFileSync(`/proc/${first}/stat`, 'utf8').split(') ')[1]![0], 'T', 'paused slapd is stopped')
    await slapd.resume()
    await slapd.kill()
    t.notOk(isAlive(first), 'killed')
    await slapd.restart()
    t.not(slapd.pid, first, 'a new process')
    const c = client()
    t.teardown(() => c.unbind())
    await c.bind(slapd.bindDN, slapd.bindPassword)
    const { searchEntries } = await c.search(slapd.baseDN, { filter: '(mailLocalAddress=dave@example.org)', attributes: ['mailHost'] })
    t.same(
      searchEntries.map((e) => e['mailHost']),
      ['mx2.example.org'],
      'the data survived',
    )
  })

  await t.test('stop() ends slapd and removes its temp dir', async (t) => {
    const conf = readFileSync(`/proc/${slapd.pid}/cmdline`, 'utf8').split('\0').find((a) => a.endsWith('slapd.conf'))!
    const pid = slapd.pid
    t.ok(existsSync(conf))
    await slapd.stop()
    await slapd.stop()
    t.notOk(isAlive(pid), 'slapd is gone')
    t.notOk(existsSync(dirname(conf)), 'the temp dir is gone')
    await t.rejects(slapd.restart(), /stopped for good/)
  })
})

peerTest(t, 'a broken fixture fails with slapadd’s own message, and leaves nothing behind', async (t, set) => {
  const orphan = 'dn: uid=x,ou=nowhere,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: x\ncn: x\nsn: x\n'
  const err = await startSlapd({ set, extraLdif: [orphan] }).then(
    () => undefined,
    (e: unknown) => e as Error,
  )
  t.match(err?.message, /slapadd .*entries missing/s)
  const conf = /(\S+\/slapd\.conf)/.exec(err?.message ?? '')?.[1]
  t.ok(conf && !existsSync(dirname(conf)), 'the temp dir is removed')
})
