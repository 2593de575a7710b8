from eventbus.runtime.process import ConsumeCommand


class Command(ConsumeCommand):
    group = "notifications"
