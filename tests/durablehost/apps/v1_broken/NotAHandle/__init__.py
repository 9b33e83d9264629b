def main(context):
    result = yield context.call_activity("Ping", None)
    return result
