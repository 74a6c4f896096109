import json


def handler(event, context):
    for record in event["Records"]:
        print(json.dumps({"worked": record["body"]}))
    return {}
