"""The S3 server of the tests: moto's (PyPI `moto[server]`), with presigned URLs checked.

    python3 s3_server.py PORT

moto checks SigV4 and IAM only for requests signed in an `Authorization` header: with
its authentication on, a presigned URL (SigV4 in the query string, what reelcast sends)
is not checked and ends in a 500. This WSGI layer in front of moto does what S3 does
with one: it recomputes the signature with botocore (an implementation independent of
reelcast's) from the key's secret in moto's IAM, refuses an unknown key, a wrong
signature or an expired URL with S3's error document, and hands a good request to moto
re-signed in a header for the same user, so that moto still decides the permissions
(AccessDenied for a user without rights). Requests signed in a header (boto3's, from
s3_setup.py) go to moto untouched; anonymous ones are refused as a private bucket does.

It also counts what it serves: `GET /reelcast-test/served` answers JSON
{"/BUCKET/KEY": {"requests": N, "bytes": BODY_BYTES_OF_2XX_ANSWERS}} for every object
GET so far, so a test can tell how often, and how many bytes of, an object was read.
"""
import datetime
import hmac
import json
import sys
import threading
from urllib.parse import unquote

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug import Request
from werkzeug.serving import run_simple


def secret_of(access_key_id):
    """The secret of an IAM user's access key in moto, or None."""
    for user in iam_backends[DEFAULT_ACCOUNT_ID]["aws"].list_users("/", None, None):
        for key in user.access_keys:
            if key.access_key_id == access_key_id:
                return key.secret_access_key
    return None


def s3_error(start_response, status, code, message):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


class PresignedUrls:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
        path, _, query = raw.partition("?")
        pairs = [p.partition("=")[::2] for p in query.split("&") if p]
        params = {k: unquote(v) for k, v in pairs}
        if "X-Amz-Signature" not in params:
            if "HTTP_AUTHORIZATION" in environ or path.startswith("/moto-api/"):
                return self.app(environ, start_response)
            # moto fails on those with a 500; S3 refuses them on a private bucket.
            return s3_error(start_response, "403 Forbidden", "AccessDenied",
                            "Anonymous (or SigV2) requests are not accepted here.")
        try:
            key_id, _day, region, service, _ = params["X-Amz-Credential"].split("/")
            signed_at = datetime.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
            expires = int(params["X-Amz-Expires"])
            signed_headers = params["X-Amz-SignedHeaders"].split(";")
        except (KeyError, ValueError):
            return s3_error(start_response, "400 Bad Request", "AuthorizationQueryParametersError",
                            "Query-string authentication version 4 requires the X-Amz-* parameters.")
        secret = secret_of(key_id)
        if secret is None:
            return s3_error(start_response, "403 Forbidden", "InvalidAccessKeyId",
                            "The AWS Access Key Id you provided does not exist in our records.")
        if datetime.datetime.utcnow() > signed_at + datetime.timedelta(seconds=expires):
            return s3_error(start_response, "403 Forbidden", "AccessDenied", "Request has expired")

        host = environ.get("HTTP_HOST", "")
        scheme = environ["wsgi.url_scheme"]
        headers = {}
        for name in signed_headers:
            value = host if name == "host" else environ.get("HTTP_" + name.upper().replace("-", "_"))
            if value is None:
                return s3_error(start_response, "403 Forbidden", "AccessDenied",
                                f"There were headers present in the request which were not signed: {name}")
            headers[name] = value
        unsigned = "&".join(f"{k}={v}" for k, v in pairs if k != "X-Amz-Signature")
        request = AWSRequest(method=environ["REQUEST_METHOD"], url=f"{scheme}://{host}{path}?{unsigned}",
                             headers=headers)
        request.context["timestamp"] = params["X-Amz-Date"]
        auth = S3SigV4QueryAuth(Credentials(key_id, secret), service, region, expires=expires)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
            return s3_error(start_response, "403 Forbidden", "SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided.")

        # Good: the same request for moto, without the X-Amz-* parameters, signed in a
        # header for the same user (moto then checks that user's permissions). moto
        # checks a header signature against the URL as werkzeug rebuilds it (decoded
        # to an IRI), so that is the URL signed here.
        rest = "&".join(f"{k}={v}" for k, v in pairs if not k.startswith("X-Amz-"))
        environ["QUERY_STRING"] = rest
        environ["RAW_URI"] = environ["REQUEST_URI"] = path + (f"?{rest}" if rest else "")
        forward = AWSRequest(method=environ["REQUEST_METHOD"], url=Request(environ).url, headers={"host": host})
        S3SigV4Auth(Credentials(key_id, secret), service, region).add_auth(forward)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256"):
            environ["HTTP_" + name.upper().replace("-", "_")] = forward.headers[name]
        return self.app(environ, start_response)


class ServedCounter:
    """Counts the requests and 2xx body bytes of every GET, by path (no query)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.served = {}

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/reelcast-test/served":
            with self.lock:
                body = json.dumps(self.served).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if environ["REQUEST_METHOD"] != "GET" or path.startswith("/moto-api/"):
            return self.app(environ, start_response)
        status = []

        def starting(s, headers, exc_info=None):
            status.append(s)
            return start_response(s, headers, exc_info) if exc_info else start_response(s, headers)

        with self.lock:
            entry = self.served.setdefault(path, {"requests": 0, "bytes": 0})
            entry["requests"] += 1
        return self.counted(self.app(environ, starting), status, entry)

    def counted(self, chunks, status, entry):
        try:
            for chunk in chunks:
                if status and status[0].startswith("2"):
                    with self.lock:
                        entry["bytes"] += len(chunk)
                yield chunk
        finally:
            if hasattr(chunks, "close"):
                chunks.close()


if __name__ == "__main__":
    app = ServedCounter(PresignedUrls(DomainDispatcherApplication(create_backend_app)))
    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
