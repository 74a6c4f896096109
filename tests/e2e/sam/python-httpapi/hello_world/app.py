import json
import os

import greet


def lambda_handler(event, context):
    return {
        "statusCode": 200,
        "body": json.dumps({"message": greet.greet(os.environ["GREETING"])}),
    }
