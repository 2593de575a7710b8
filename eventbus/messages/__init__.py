"""Events, their envelope, codec, payload types, upcasting and the registry."""
