#!/usr/bin/env python3
"""Test-bed control for a moto server: create what a test needs and read back what arrived.

    moto_ctl.py ENDPOINT replay-target BUS QUEUE     -> prints the queue URL
    moto_ctl.py ENDPOINT drain QUEUE_URL N SECONDS   -> prints up to N message bodies (NDJSON)
    moto_ctl.py ENDPOINT function NAME               -> a Docker-less function that echoes
    moto_ctl.py ENDPOINT queue-results JSON_LIST     -> results for the next invocations
    moto_ctl.py ENDPOINT recording start|get         -> moto's request recorder
    moto_ctl.py ENDPOINT table NAME KEY:TYPE[,KEY:TYPE] -> a DynamoDB table (hash key first)
    moto_ctl.py ENDPOINT scan NAME                   -> every item, as DynamoDB JSON (NDJSON)
    moto_ctl.py ENDPOINT upload BUCKET PREFIX DIR    -> every file under DIR as PREFIX<relative path>
    moto_ctl.py ENDPOINT keys BUCKET PREFIX          -> the object keys under PREFIX, one a line
    moto_ctl.py ENDPOINT download BUCKET PREFIX DIR  -> every object under PREFIX into DIR/<key>
    moto_ctl.py ENDPOINT bucket NAME                 -> an empty bucket
    moto_ctl.py ENDPOINT rules-bed                   -> bus `app` with rules whose targets are the
                                                        Lambda functions f-plain, f-path, f-transform
                                                        (created beforehand) and one SQS queue, a
                                                        disabled rule, and bus `mirror` with the same
                                                        rules aimed at SQS queues; prints {queue: url}
    moto_ctl.py ENDPOINT put-events BUS FILE         -> FILE's events onto BUS (PutEvents, boto3)
    moto_ctl.py ENDPOINT put-items NAME FILE         -> every line of FILE (plain JSON, numbers kept
                                                        exact as Decimal; or DynamoDB JSON under
                                                        {"typed": …}) as an item of table NAME
    moto_ctl.py - export DIR PREFIX FILE ID KIND [BAD] -> a DynamoDB export of FILE's items laid out
                                                        under DIR/PREFIXAWSDynamoDB/ID/ as DynamoDB writes
                                                        it (KIND full|incremental; BAD: the manifest
                                                        overstates the first file's count by one)
    moto_ctl.py ENDPOINT statements                  -> every Redshift Data statement: JSON lines
                                                        {Id, QueryString, Status, Error}, oldest first
    moto_ctl.py ENDPOINT sql WORKGROUP DATABASE SQL   -> runs one Redshift Data statement

Moto quirks worked around here (seen on moto 5.2.5):
- Lambda runs without Docker only after POST /moto-api/config {"lambda":{"use_docker":false}},
  and only for functions created after that switch; such functions echo their payload.
- A rule whose target is a Lambda makes PutEvents fail with HTTP 500, so replays are observed
  through an SQS target; delivery to SQS slows as the queue fills, so drain as you go.
- Messages delivered to SQS lack `account`.
"""
import io
import json
import sys
import time
import urllib.error
import urllib.request
import zipfile

import boto3

REGION = "eu-west-1"


def client(endpoint, name):
    return boto3.client(name, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def moto_api(endpoint, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(endpoint + path, data=data, method="POST" if data is not None else "GET")
    return urllib.request.urlopen(req).read()


def replay_target(endpoint, bus, queue):
    eb, sqs = client(endpoint, "events"), client(endpoint, "sqs")
    eb.create_event_bus(Name=bus)
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # The rule matches replays by their marker resource: what a rule on a rebuild bus would do.
    eb.put_rule(Name=f"{bus}-replays", EventBusName=bus,
                EventPattern=json.dumps({"resources": [{"prefix": "arn:aws:rehydrate:"}]}))
    eb.put_targets(Rule=f"{bus}-replays", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    print(url)


def drain(endpoint, url, n, seconds):
    sqs = client(endpoint, "sqs")
    bodies, deadline, quiet = [], time.time() + seconds, 0
    while len(bodies) < n and time.time() < deadline:
        resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        msgs = resp.get("Messages", [])
        for m in msgs:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    # A short extra wait catches duplicates that would arrive after the expected count.
    end = time.time() + 2
    while time.time() < end:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in msgs:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    for b in bodies:
        print(json.dumps(json.loads(b), ensure_ascii=False))


def function(endpoint, name):
    moto_api(endpoint, "/moto-api/config", {"lambda": {"use_docker": False}})
    iam = client(endpoint, "iam")
    try:
        role = iam.create_role(RoleName="rehydrate-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName="rehydrate-test")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return event\n")
    client(endpoint, "lambda").create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="index.handler", Code={"ZipFile": buf.getvalue()})


def queue_results(endpoint, results):
    moto_api(endpoint, "/moto-api/static/lambda-simple/response",
             {"results": json.loads(results), "region": REGION})


def recording(endpoint, what):
    if what == "start":
        moto_api(endpoint, "/moto-api/recorder/start-recording", {})
    else:
        # moto creates the recording file on the first recorded request; none yet is empty.
        try:
            sys.stdout.write(moto_api(endpoint, "/moto-api/recorder/download-recording").decode())
        except urllib.error.HTTPError:
            pass


def table(endpoint, name, keys):
    ddb = client(endpoint, "dynamodb")
    parts = [k.split(":") for k in keys.split(",")]
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": n, "KeyType": "HASH" if i == 0 else "RANGE"} for i, (n, _) in enumerate(parts)],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in parts],
        BillingMode="PAY_PER_REQUEST",
    )


def scan(endpoint, name):
    # The low-level client keeps numbers as the strings DynamoDB stores: an exact oracle.
    ddb = client(endpoint, "dynamodb")
    for page in ddb.get_paginator("scan").paginate(TableName=name):
        for item in page["Items"]:
            print(json.dumps(item, ensure_ascii=False, sort_keys=True, default=lambda b: __import__("base64").b64encode(b).decode()))


def upload(endpoint, bucket, prefix, directory):
    import concurrent.futures
    import os
    s3 = client(endpoint, "s3")
    try:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    files = [os.path.join(d, f) for d, _, fs in os.walk(directory) for f in fs]
    def put(path):
        key = prefix + os.path.relpath(path, directory).replace(os.sep, "/")
        s3.upload_file(path, bucket, key)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files))
    print(len(files))


def keys(endpoint, bucket, prefix):
    s3 = client(endpoint, "s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            print(o["Key"])


def download(endpoint, bucket, prefix, directory):
    import os
    s3 = client(endpoint, "s3")
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            path = os.path.join(directory, o["Key"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            s3.download_file(bucket, o["Key"], path)
            n += 1
    print(n)


def typed_item(line, for_boto3=True):
    """A line as a DynamoDB item in DynamoDB JSON, by boto3's own serializer (not rehydrate's);
    binary as bytes for boto3, or as base64 text as an export writes it."""
    from decimal import Decimal
    from boto3.dynamodb.types import TypeSerializer
    value = json.loads(line, parse_float=Decimal, parse_int=Decimal)
    if "typed" in value and not for_boto3:
        return json.loads(line)["typed"]
    if "typed" in value:
        # boto3 takes binary as bytes (it base64-encodes them on the wire).
        import base64
        def raw(v):
            (kind, x), = v.items()
            if kind == "B":
                return {"B": base64.b64decode(x)}
            if kind == "BS":
                return {"BS": [base64.b64decode(b) for b in x]}
            if kind == "M":
                return {"M": {k: raw(w) for k, w in x.items()}}
            if kind == "L":
                return {"L": [raw(w) for w in x]}
            return v
        return {k: raw(v) for k, v in json.loads(line)["typed"].items()}
    ser = TypeSerializer()
    return {k: ser.serialize(v) for k, v in value.items()}


def put_items(endpoint, name, path):
    import concurrent.futures
    ddb = client(endpoint, "dynamodb")
    items = [typed_item(l) for l in open(path, encoding="utf-8") if l.strip()]
    def put(chunk):
        for item in chunk:
            ddb.put_item(TableName=name, Item=item)
    chunks = [items[i::8] for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(put, chunks))
    print(len(items))


def export(directory, prefix, path, export_id, kind, bad=None):
    """Writes an export as DynamoDB does (moto's own export has no manifests): gzip data files
    of {"Item": …} lines (incremental: {"Metadata", "Keys", "NewImage"} lines, and a deletion
    without NewImage for every tenth item), manifest-files.json and manifest-summary.json."""
    import gzip
    import os
    items = [typed_item(l, for_boto3=False) for l in open(path, encoding="utf-8") if l.strip()]
    base = f"{prefix}AWSDynamoDB/{export_id}"
    os.makedirs(os.path.join(directory, base, "data"), exist_ok=True)
    files, total = [], 0
    for n in range(3):
        part = items[n::3]
        key = f"{base}/data/part-{n:05d}.json.gz"
        lines = []
        for i, item in enumerate(part):
            if kind == "full":
                lines.append({"Item": item})
            else:
                keys = {"id": item["id"]}
                meta = {"WriteTimestampMicros": {"N": str(1767225600000000 + i)}}
                if i % 10 == 9:
                    lines.append({"Metadata": meta, "Keys": keys, "OldImage": item})
                else:
                    lines.append({"Metadata": meta, "Keys": keys, "NewImage": item})
        with gzip.open(os.path.join(directory, key), "wt", encoding="utf-8") as f:
            for l in lines:
                f.write(json.dumps(l, ensure_ascii=False) + "\n")
        count = len(lines) + (1 if bad and n == 0 else 0)
        files.append({"itemCount": count, "md5Checksum": "x", "etag": "x", "dataFileS3Key": key})
        total += count
    with open(os.path.join(directory, base, "manifest-files.json"), "w") as f:
        for m in files:
            f.write(json.dumps(m) + "\n")
    summary = {
        "version": "2020-06-30" if kind == "full" else "2023-08-01",
        "exportArn": f"arn:aws:dynamodb:eu-west-1:123456789012:table/store/export/{export_id}",
        "tableArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/store",
        "s3Bucket": "exports", "s3Prefix": prefix or None,
        "manifestFilesS3Key": f"{base}/manifest-files.json",
        "itemCount": total, "outputFormat": "DYNAMODB_JSON",
        "exportType": "FULL_EXPORT" if kind == "full" else "INCREMENTAL_EXPORT",
    }
    with open(os.path.join(directory, base, "manifest-summary.json"), "w") as f:
        json.dump(summary, f)


RULES = [
    # (rule, pattern, input kind, extra target fields)
    ("orders-placed", {"source": ["com.shop.orders"], "detail-type": ["OrderPlaced"]}, "plain", {}),
    ("payments", {"source": ["com.shop.payments"]}, "path", {"InputPath": "$.detail"}),
    ("users", {"source": ["com.shop.users"], "detail-type": [{"prefix": "User"}]}, "transform", {
        "InputTransformer": {
            "InputPathsMap": {"user": "$.detail.userId", "kind": "$.detail-type", "src": "$.source"},
            "InputTemplate": '{"user": "<user>", "kind": "<kind>", "from": "<src>", "note": "<kind> of <user>"}',
        }}),
]


def rules_bed(endpoint):
    eb, sqs = client(endpoint, "events"), client(endpoint, "sqs")
    queues = {}
    def queue(name):
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        queues[name] = url
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for bus in ("app", "mirror"):
        eb.create_event_bus(Name=bus)
        for rule, pattern, kind, extra in RULES:
            eb.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
            if bus == "app":
                arn = f"arn:aws:lambda:{REGION}:123456789012:function:f-{kind}"
            else:
                arn = queue(f"mirror-{kind}")
            eb.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": f"t-{kind}", "Arn": arn, **extra}])
    # On `app`, one rule also has a queue (not a Lambda: listed, skipped), and one rule is disabled.
    eb.put_targets(Rule="orders-placed", EventBusName="app", Targets=[{"Id": "audit-queue", "Arn": queue("audit")}])
    eb.put_rule(Name="switched-off", EventBusName="app", EventPattern=json.dumps({"source": ["com.shop.orders"]}), State="DISABLED")
    eb.put_targets(Rule="switched-off", EventBusName="app", Targets=[{"Id": "t-off", "Arn": f"arn:aws:lambda:{REGION}:123456789012:function:f-plain"}])
    print(json.dumps(queues))


def put_events(endpoint, bus, path):
    import datetime
    eb = client(endpoint, "events")
    events = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    for i in range(0, len(events), 10):
        entries = [{
            "Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"]),
            "Time": datetime.datetime.fromisoformat(e["time"]), "Resources": e.get("resources", []),
            "EventBusName": bus,
        } for e in events[i:i + 10]]
        failed = eb.put_events(Entries=entries)["FailedEntryCount"]
        assert failed == 0, failed
    print(len(events))


def bucket(endpoint, name):
    client(endpoint, "s3").create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})


def statements(endpoint):
    rsd = client(endpoint, "redshift-data")
    for st in rsd.list_statements()["Statements"]:
        d = rsd.describe_statement(Id=st["Id"])
        print(json.dumps({"Id": d["Id"], "QueryString": d["QueryString"], "Status": d["Status"], "Error": d.get("Error")}))


def sql(endpoint, workgroup, database, text):
    client(endpoint, "redshift-data").execute_statement(WorkgroupName=workgroup, Database=database, Sql=text)


def main(argv):
    endpoint, cmd, rest = argv[0], argv[1], argv[2:]
    if cmd == "replay-target":
        replay_target(endpoint, *rest)
    elif cmd == "drain":
        drain(endpoint, rest[0], int(rest[1]), float(rest[2]))
    elif cmd == "function":
        function(endpoint, rest[0])
    elif cmd == "queue-results":
        queue_results(endpoint, rest[0])
    elif cmd == "recording":
        recording(endpoint, rest[0])
    elif cmd == "table":
        table(endpoint, rest[0], rest[1])
    elif cmd == "scan":
        scan(endpoint, rest[0])
    elif cmd == "upload":
        upload(endpoint, *rest)
    elif cmd == "keys":
        keys(endpoint, *rest)
    elif cmd == "download":
        download(endpoint, *rest)
    elif cmd == "rules-bed":
        rules_bed(endpoint)
    elif cmd == "put-events":
        put_events(endpoint, *rest)
    elif cmd == "put-items":
        put_items(endpoint, *rest)
    elif cmd == "export":
        export(*rest)
    elif cmd == "bucket":
        bucket(endpoint, rest[0])
    elif cmd == "statements":
        statements(endpoint)
    elif cmd == "sql":
        sql(endpoint, *rest)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
