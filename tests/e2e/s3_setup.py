"""Fills a fresh moto S3 server for the S3 tests, then turns its authentication on.

Reads JSON on stdin: {"endpoint": "http://127.0.0.1:PORT", "buckets": [...],
"objects": [{"bucket", "key", "file"}]}. Creates two IAM users (one allowed s3:*, one
with no policy at all), the buckets and the objects, then asks moto to check every
request's signature and permissions from now on. Prints the users' keys as JSON.
boto3 comes with moto[server].
"""
import json
import sys
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig

cfg = json.load(sys.stdin)
endpoint = cfg["endpoint"]
common = dict(endpoint_url=endpoint, region_name="us-east-1")
iam = boto3.client("iam", aws_access_key_id="setup", aws_secret_access_key="setup", **common)


def user(name, policy):
    iam.create_user(UserName=name)
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


reader = user("reelcast", {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
})
nobody = user("nobody", None)
s3 = boto3.client("s3", aws_access_key_id=reader["key"], aws_secret_access_key=reader["secret"], **common)
for bucket in cfg["buckets"]:
    s3.create_bucket(Bucket=bucket)
big = TransferConfig(multipart_threshold=64 * 1024 * 1024, multipart_chunksize=64 * 1024 * 1024)
for obj in cfg["objects"]:
    s3.upload_file(obj["file"], obj["bucket"], obj["key"], Config=big)

req = urllib.request.Request(
    endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
    headers={"Content-Type": "text/plain"},
)
urllib.request.urlopen(req).read()
print(json.dumps({"reader": reader, "nobody": nobody}))
