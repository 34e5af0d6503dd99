# Gives the loaded tickets the shape of a desk used for a year: opened over 365 days, all but
# the last two days' and one in fifty resolved within two days of opening.
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1] if len(sys.argv) > 1 else 'opsdesk.db', timeout=600)
c.execute('PRAGMA busy_timeout=600000')
t = time.time()
now = "2026-11-24 21:40:00"
ts = lambda expr: f"strftime('%Y-%m-%dT%H:%M:%S', {expr}) || '.000000Z'"
base = f"'{now}', printf('-%d seconds', (id * 7919) % 31536000)"
c.execute(f"UPDATE tickets SET created_at = {ts(base)}, updated_at = {ts(base)}")
ack = f"substr(created_at, 1, 19), printf('+%d seconds', (id * 31) % 7200)"
res = f"substr(created_at, 1, 19), printf('+%d seconds', (id * 31) % 7200 + (id * 17) % 172800)"
recent = f"created_at >= {ts(repr(now) + ', ' + repr('-2 days'))}"
c.execute(f"UPDATE tickets SET acknowledged_at = {ts(ack)}, resolved_at = {ts(res)}, updated_at = {ts(res)}, status = 'resolved' WHERE id % 50 <> 0 AND NOT ({recent})")
c.execute(f"UPDATE tickets SET acknowledged_at = {ts(ack)}, updated_at = {ts(ack)}, status = 'acknowledged' WHERE id % 50 = 0 AND NOT ({recent})")
c.commit()
print("shaped in", round(time.time() - t, 1), "s")
print(c.execute("select status, count(*) from tickets group by status").fetchall())
print(c.execute("select min(created_at), max(created_at), max(resolved_at) from tickets").fetchone())
