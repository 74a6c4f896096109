import built


def handler(event, context):
    return {"from": "make", "stamp": built.STAMP}
