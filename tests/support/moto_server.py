#!/usr/bin/env python3
"""Starts moto's server (same arguments as moto_server) with one correction the tests need.

Correction (moto 5.2.5): the Docker-less Lambda backend can queue results
(POST /moto-api/static/lambda-simple/response) but cannot return a *function error*: every
queued result comes back as a success. Real Lambda marks a failed invocation with the
X-Amz-Function-Error header (Handled / Unhandled) and a payload {"errorType", "errorMessage"}.
Here a queued result that is a JSON object with a "functionError" key is returned that way:
the header is set to its value and the key is removed from the payload. Other results are
untouched.
"""
import json
import sys

from moto.awslambda_simple import models

_original_invoke = models.LambdaSimpleBackend.invoke


def _invoke(self, function_name, qualifier, body, headers, response_headers):
    queue = self.lambda_simple_results_queue
    if queue:
        try:
            result = json.loads(queue[0])
        except ValueError:
            result = None
        if isinstance(result, dict) and "functionError" in result:
            queue.pop(0)
            response_headers["x-amz-function-error"] = result.pop("functionError")
            return json.dumps(result).encode()
    return _original_invoke(self, function_name, qualifier, body, headers, response_headers)


models.LambdaSimpleBackend.invoke = _invoke

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
