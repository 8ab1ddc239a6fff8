// The process's streams and environment behind an interface, so that commands can be run
// in-process by tests with captured output and a given standard input.

export interface Io {
  /** Standard output: what the command answers. */
  out(text: string): void
  /** Standard error: errors, notes and hints, never mixed into the answer. */
  err(text: string): void
  /** All of standard input (for --password-stdin). */
  stdin(): Promise<string>
  readonly env: Readonly<Record<string, string | undefined>>
}

export const processIo: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  stdin: async () => {
    const chunks: Buffer[] = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks).toString('utf8')
  },
  env: process.env,
}
