// mailhostd's exit statuses that something outside reads: one place for main.ts and for the
// systemd unit's RestartPreventExitStatus (packaging/mailhostd.service, checked by
// test/packaging/paths.test.ts).

/** sysexits.h EX_CONFIG: the configuration is invalid. A supervisor must not restart-loop on it. */
export const EX_CONFIG = 78
