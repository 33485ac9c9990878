"""The vehicle agent's signal source from CAN: python-can frames, cantools + DBC, VSS mapping.

    from chelian.agent.can import CanDecoder, CanSignalSource, load_mapping, opendbc_dbc

    decoder = CanDecoder(opendbc_dbc("vw_mqb"), load_mapping("vw_mqb"))
    with CanSignalSource(decoder, interface="socketcan", channel="can0") as source:
        source.snapshot()

See README.md beside this file for writing a mapping for a car.
"""

from chelian.agent.can.dbc import DbcNotFound, load_dbc, opendbc_dbc, opendbc_names
from chelian.agent.can.decoder import CanDecoder, DecodeStats
from chelian.agent.can.mapping import (
    Mapping,
    MappingError,
    SignalMap,
    builtin_mapping,
    builtin_mappings,
    load_mapping,
    parse_mapping,
)
from chelian.agent.can.source import CanSignalSource

__all__ = [
    "CanDecoder", "CanSignalSource", "DbcNotFound", "DecodeStats", "Mapping", "MappingError", "SignalMap",
    "builtin_mapping", "builtin_mappings", "load_dbc", "load_mapping", "opendbc_dbc", "opendbc_names",
    "parse_mapping",
]
