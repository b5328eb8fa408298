"""`scale`: bulk, reproducible data for benchmarks (the same seed gives the same data).

Adds generated zones (on both nameservers, copied by SQL dump as at `up`),
mail accounts (spread over the lab's mail domains, on old and new, sharing one
password file) and messages per account on the old server, then rewrites the
inventory so the suite sees all of it.
"""

from __future__ import annotations

import random
import time

from lab import daemons, inventory, pki, profiles, seed, state
from lab.labctl import DKIM_KEY, lab_state, say
from lab.run import LabError, run
from lab.topology import INITIAL_TTL, NEW, OLD, SERVERS, ZONES
from lab.zones import initial_serial, insert_zone_sql, zone_records

# A fixed clock for generated mail: Message-IDs and UIDs repeat run after run.
EPOCH = 1_700_000_000.0
SCALE_SECRET = "mail-scale"


def _messages(rng: random.Random, count: int) -> list[seed.Message]:
    messages = []
    for i in range(count):
        flags = rng.choice(("", "S", "S", "S", "FS", "RS", "a"))
        body = "".join(f"line {n} of message {i}\n" for n in range(rng.randint(1, 40)))
        messages.append(
            seed.Message(f"Generated message {i}", flags, message_id=rng.random() > 0.02, body=body)
        )
    return messages


def scale(domains: int, accounts: int, messages: int, rng_seed: int) -> None:
    if profiles.legacy():
        raise LabError("scale: not on a lab of profile legacy (its zones are MyDNS rows)")
    data = lab_state()
    if data["story"]["synced"]:
        say("scale: note: the lab was already synced; run `sync` again to copy the new data")
    started = time.monotonic()
    rng = random.Random(rng_seed)

    names = [f"zone{i:04d}.test" for i in range(1, domains + 1)]
    server = NEW if data["story"]["dns"] == "new" else OLD
    target = server.address
    ttl = data["story"]["ttl"] or INITIAL_TTL
    # The servers' DKIM key, published in every generated zone as in the lab's own.
    dkim_public = pki.dkim_public(OLD.root / DKIM_KEY)
    seed.load_zones(
        [
            insert_zone_sql(
                z, zone_records(z, target, ttl, initial_serial(), dkim_public, server.address6)
            )
            for z in names
        ]
    )
    say(
        f"scale: {domains} generated zones on ns1 and ns2 "
        f"(A -> {target}, AAAA -> {server.address6}, TTL {ttl})"
    )

    password = state.new_secret(SCALE_SECRET) if accounts else ""
    users = [f"user{i:05d}@{ZONES[i % len(ZONES)]}" for i in range(1, accounts + 1)]
    base = [(u, state.read_secret(f"mail-{u}")) for u in seed.SEED_ACCOUNTS]
    for host in SERVERS:
        daemons.write_mail_users(host, base + [(u, password) for u in users])
    mailboxes = {u: [seed.Mailbox("INBOX", _messages(rng, messages))] for u in users}
    written = seed.write_mail(OLD, mailboxes, start=EPOCH)
    run(["chown", "-R", "vmail:vmail", str(OLD.root / "srv/vmail")], timeout=600)
    say(
        f"scale: {accounts} accounts on old and new, {written} messages on old "
        f"({messages} per account, seed {rng_seed})"
    )

    data["scale"] = {
        "domains": domains,
        "accounts": accounts,
        "messages": messages,
        "seed": rng_seed,
    }
    data["accounts"]["mail"].update({u: str(state.secret_path(SCALE_SECRET)) for u in users})
    state.save(data)
    inventory.write(
        list(seed.SEED_ACCOUNTS),
        [*ZONES, *names],
        extra_accounts=[(u, SCALE_SECRET) for u in users],
    )
    say(f"scale: inventory rewritten; done in {time.monotonic() - started:.1f}s")
