def describe(message):
    return "order " + message
