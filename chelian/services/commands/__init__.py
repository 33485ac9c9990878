"""Remote commands: signed on the cloud (or on an owner's device), verified and acted on by the car.

Pure modules (`catalog`, `envelope`) are shared with the car side (`chelian.agent.commands`)
and import nothing from storage; `keys`, `lifecycle`, `acks` and `relay` are the cloud side.
See docs/protocol.md, "Commands and acks", for the wire format.
"""
