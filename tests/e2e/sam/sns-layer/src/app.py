import json

import shared


def handler(event, context):
    for record in event["Records"]:
        print(json.dumps({"got": shared.describe(record["Sns"]["Message"])}))
