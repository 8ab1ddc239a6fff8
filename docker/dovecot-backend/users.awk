# Prints a Dovecot passwd-file line (address:{SCHEME}hash) for every LDIF entry whose mailHost
# is `want`: the demo accounts of one backend, with the passwords fixtures/ldap/demo.ldif gives
# them ({SSHA512} is a Dovecot scheme too). Run with awk -v want=mx1.example.org.
BEGIN { RS = "" }
{
  entry = $0
  gsub(/\n /, "", entry)   # LDIF continuation lines
  n = split(entry, line, "\n")
  mail = host = password = ""
  for (i = 1; i <= n; i++) {
    if (line[i] ~ /^mail: /) mail = substr(line[i], 7)
    else if (line[i] ~ /^mailHost: /) host = substr(line[i], 11)
    else if (line[i] ~ /^userPassword: /) password = substr(line[i], 15)
  }
  if (mail != "" && password != "" && tolower(host) == tolower(want)) print mail ":" password
}
