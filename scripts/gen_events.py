#!/usr/bin/env python3
"""Generates the sample event stores in testdata/ (deterministic: the same bytes every time),
and large NDJSON stores for benchmarks.

    python3 scripts/gen_events.py testdata            # the bundled sample files
    python3 scripts/gen_events.py --ndjson N > f.ndjson   # N events, for benchmarks
"""
import datetime as dt
import gzip
import json
import random
import sys
import uuid
from pathlib import Path

ACCOUNTS = ["123456789012", "210987654321"]
REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "ap-northeast-1"]
CITIES = [
    ("Berlin", "DE"), ("München", "DE"), ("Köln", "DE"), ("Zürich", "CH"), ("Kraków", "PL"),
    ("São Paulo", "BR"), ("東京", "JP"), ("Paris", "FR"), ("Dublin", "IE"), ("Seattle", "US"),
]
NAMES = ["Jürgen Groß", "Ana Łukasz", "Søren Ørsted", "Zoë Brontë", "山田太郎", "Olga Petrova",
         "María José", "Chen Wei", "Ava Smith", "Noah 🚀 Jones"]
SKUS = [f"SKU-{n:03d}" for n in range(1, 41)]
OFFSETS = ["Z", "Z", "Z", "+02:00", "-05:00", "+09:00"]


def fmt_time(rng, t):
    """RFC 3339 with a varying offset and sometimes milliseconds: the forms real stores hold."""
    off = rng.choice(OFFSETS)
    if off == "Z":
        local = t
    else:
        sign = 1 if off[0] == "+" else -1
        local = t + dt.timedelta(hours=sign * int(off[1:3]))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if rng.random() < 0.3:
        text += f".{t.microsecond // 1000:03d}"
    return text + off


def make_events(n, seed=42):
    rng = random.Random(seed)
    t = dt.datetime(2026, 1, 1, 8, 0, 0, tzinfo=dt.timezone.utc)
    users, orders = [], []
    events = []
    for _ in range(n):
        t += dt.timedelta(seconds=rng.randint(60, 14000), milliseconds=rng.randint(0, 999))
        account, region = rng.choice(ACCOUNTS), rng.choice(REGIONS)
        kind = rng.random()
        resources = []
        if kind < 0.2 or not users:
            uid = f"U-{len(users) + 1:05d}"
            city, country = rng.choice(CITIES)
            users.append((uid, city, country))
            source, dtype = "com.shop.users", "UserRegistered"
            detail = {"userId": uid, "name": rng.choice(NAMES), "email": f"{uid.lower()}@example.com",
                      "address": {"city": city, "country": country}, "marketing": rng.random() < 0.5}
        elif kind < 0.27:
            uid, _, _ = rng.choice(users)
            source, dtype = "com.shop.users", rng.choice(["UserEmailChanged", "UserDeleted"])
            detail = {"userId": uid}
            if dtype == "UserEmailChanged":
                detail["email"] = f"{uid.lower()}+new@example.org"
        elif kind < 0.55:
            uid, city, country = rng.choice(users)
            oid = f"ORD-{len(orders) + 1:06d}"
            items = [{"sku": rng.choice(SKUS), "qty": rng.randint(1, 5),
                      "price": round(rng.uniform(2, 120), 2)} for _ in range(rng.randint(1, 5))]
            total = round(sum(i["qty"] * i["price"] for i in items), 2)
            orders.append((oid, uid, total))
            source, dtype = "com.shop.orders", "OrderPlaced"
            detail = {"orderId": oid, "customer": {"id": uid, "address": {"city": city, "country": country}},
                      "items": items, "total": total, "currency": "EUR", "express": rng.random() < 0.25}
            resources = [f"arn:aws:dynamodb:{region}:{account}:table/orders/{oid}"]
        elif kind < 0.72:
            oid, uid, total = rng.choice(orders) if orders else ("ORD-000000", "U-00001", 0)
            source, dtype = "com.shop.orders", rng.choice(["OrderShipped", "OrderShipped", "OrderCancelled"])
            detail = {"orderId": oid, "customerId": uid}
            if dtype == "OrderShipped":
                detail["carrier"] = rng.choice(["DHL", "UPS", "La Poste", "ヤマト運輸"])
                detail["tracking"] = {"number": f"TRK{rng.randint(10**8, 10**9)}", "eta_days": rng.randint(1, 7)}
            else:
                detail["reason"] = rng.choice(["customer request", "payment failed", "out of stock"])
            resources = [f"arn:aws:dynamodb:{region}:{account}:table/orders/{oid}"]
        elif kind < 0.92:
            oid, uid, total = rng.choice(orders) if orders else ("ORD-000000", "U-00001", 10.0)
            source = "com.shop.payments"
            dtype = rng.choices(["PaymentAuthorized", "PaymentCaptured", "PaymentFailed"], [5, 4, 1])[0]
            detail = {"paymentId": f"PAY-{rng.randint(10**6, 10**7)}", "orderId": oid, "amount": total,
                      "currency": "EUR", "method": rng.choice(["card", "paypal", "sepa", "klarna"])}
            if dtype == "PaymentFailed":
                detail["error"] = {"code": rng.choice(["card_declined", "insufficient_funds"]), "retryable": False}
        else:
            source, dtype = "com.shop.inventory", rng.choice(["StockReserved", "StockReleased"])
            detail = {"sku": rng.choice(SKUS), "qty": rng.randint(1, 50),
                      "warehouse": rng.choice(["DUB-1", "FRA-2", "NRT-1"])}
        event = {
            "version": "0",
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "detail-type": dtype,
            "source": source,
            "account": account,
            "time": fmt_time(rng, t),
            "region": region,
            "resources": resources,
            "detail": detail,
        }
        events.append(event)
    return events


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def eventstore(n, seed=7):
    """An event-store table dump that is not EventBridge-shaped (read with --map)."""
    rng = random.Random(seed)
    out = []
    t = 1767254400000  # 2026-01-01T08:00:00Z in ms
    for i in range(n):
        t += rng.randint(60_000, 9_000_000)
        agg = rng.choice(["orders", "carts", "users"])
        etype = {"orders": ["OrderPlaced", "OrderShipped"], "carts": ["ItemAdded", "ItemRemoved"],
                 "users": ["UserRegistered"]}[agg]
        rec = {
            "pk": f"{agg.upper()}#{rng.randint(1, 60):04d}",
            "sk": f"EVENT#{i + 1:06d}",
            "eventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "eventType": rng.choice(etype),
            "aggregate": f"com.legacy.{agg}",
            "createdAt": t,
            "payload": dumps({"seq": i + 1, "sku": rng.choice(SKUS), "qty": rng.randint(1, 9),
                              "note": rng.choice(["", "gift 🎁", "fragile", "Grüße"])}),
        }
        out.append(rec)
    return out


MALFORMED = [
    # (line, rejected?) — documented here so tests can count on it.
    ('{"id":"m-ok-1","source":"com.shop.orders","detail-type":"OrderPlaced","time":"2026-02-01T10:00:00Z","detail":{"orderId":"ORD-M1","total":10.5}}', False),
    ('this is not json', True),
    ('', None),  # blank: skipped, not a record
    ('{"id":"m-trunc","source":"com.shop.orders","detail-type":"OrderPlaced","detail":{"orderId":', True),
    ('{"id":"m-nosource","detail-type":"OrderPlaced","time":"2026-02-01T10:01:00Z","detail":{}}', True),
    ('{"id":"m-ok-2","source":"com.shop.users","detail-type":"UserRegistered","time":"2026-02-01T10:02:00.5+01:00","detail":{"userId":"U-M2","name":"Ärger Ölig"}}', False),
    ('[1, 2, 3]', True),
    ('{"id":"m-notype","source":"com.shop.orders","time":"2026-02-01T10:03:00Z","detail":{}}', True),
    ('{"id":"m-nodetail","source":"com.shop.orders","detail-type":"OrderPlaced","time":"2026-02-01T10:04:00Z"}', True),
    ('   ', None),
    ('{"id":"m-badtime","source":"com.shop.orders","detail-type":"OrderPlaced","time":"last tuesday","detail":{}}', True),
    ('{"id":"m-detailstr","source":"com.shop.orders","detail-type":"OrderPlaced","time":"2026-02-01T10:05:00Z","detail":"not an object"}', True),
    ('{"source":"com.shop.inventory","detail-type":"StockReserved","time":"2026-02-01T10:06:00Z","detail":{"sku":"SKU-001","qty":1}}', False),
    ('42', True),
    ('{"id":"m-ok-4","source":"com.shop.payments","detail-type":"PaymentCaptured","time":"2026-02-01T10:07:00Z","detail":"{\\"paymentId\\":\\"PAY-M4\\",\\"amount\\":3}"}', False),
    ('{"id":"m-srcnum","source":17,"detail-type":"OrderPlaced","detail":{}}', True),
]


def write_testdata(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    events = make_events(1200)
    ndjson = "".join(dumps(e) + "\n" for e in events)
    (root / "events.ndjson").write_text(ndjson, encoding="utf-8")
    # The same events as a pretty-printed JSON array (elements span lines).
    (root / "events.json").write_text(json.dumps(events, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    with gzip.GzipFile(root / "events.ndjson.gz", "wb", mtime=0) as f:
        f.write(ndjson.encode("utf-8"))
    (root / "eventstore.ndjson").write_text("".join(dumps(r) + "\n" for r in eventstore(200)), encoding="utf-8")
    (root / "malformed.ndjson").write_text("".join(line + "\n" for line, _ in MALFORMED), encoding="utf-8")


def main(argv):
    if len(argv) >= 2 and argv[0] == "--ndjson":
        n = int(argv[1])
        seed = int(argv[2]) if len(argv) > 2 else 42
        out = sys.stdout
        chunk = 50_000
        for start in range(0, n, chunk):
            batch = make_events(min(chunk, n - start), seed=seed + start)
            out.write("".join(dumps(e) + "\n" for e in batch))
        return 0
    if len(argv) == 1 and not argv[0].startswith("-"):
        write_testdata(Path(argv[0]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
