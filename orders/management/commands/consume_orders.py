from eventbus.process import ConsumeCommand


class Command(ConsumeCommand):
    group = "orders"
