"""Descriptors beyond the basic set: multipath key steps (BIP389, Core's Parse returning
several descriptors)."""

from __future__ import annotations

import pytest

from consensus.params import REGTEST
from wallet.descriptors import (
    DescriptorError,
    ScanObject,
    add_checksum,
    derive_addresses,
    descriptor_info,
    parse_descriptor,
    parse_descriptors,
)

TPUB = ("tpubD6NzVbkrYhZ4WaWSyoBvQwbpLkojyoTZPRsgXELWz3Popb3qkjcJyJUGLnL4qHHoQvao8ESaAstxYSnhys"
        "wJ76uZPStJRJCTKvosUCJZL5B")


def test_multipath_expands_every_key_in_step():
    desc = f"wsh(multi(1,{TPUB}/<1;2>/0/*,{TPUB}/<2;3>/0/*))"
    info = descriptor_info(desc, REGTEST)
    assert info["descriptor"] == add_checksum(f"wsh(multi(1,{TPUB}/1/0/*,{TPUB}/2/0/*))")
    assert info["multipath_expansion"] == [
        add_checksum(f"wsh(multi(1,{TPUB}/1/0/*,{TPUB}/2/0/*))"),
        add_checksum(f"wsh(multi(1,{TPUB}/2/0/*,{TPUB}/3/0/*))"),
    ]
    assert info["isrange"] is True
    assert "multipath_expansion" not in descriptor_info(f"wpkh({TPUB}/0/*)", REGTEST)


def test_multipath_derives_and_scans_each_path():
    desc = f"wpkh({TPUB}/<0;1>/*)"
    receive, change = derive_addresses(desc, REGTEST, [0, 1])
    assert receive == derive_addresses(f"wpkh({TPUB}/0/*)", REGTEST, [0, 1])
    assert change == derive_addresses(f"wpkh({TPUB}/1/*)", REGTEST, [0, 1])
    assert len(ScanObject(desc, REGTEST, 1).scripts) == 4


@pytest.mark.parametrize("desc,message", [
    (f"pkh({TPUB}/<0;1>/<2;3>)", "pkh(): Multiple multipath key path specifiers found"),
    (f"pkh([deadbeef/<0;1>]{TPUB}/0)",
     "pkh(): Key path value '<0;1>' specifies multipath in a section where multipath is not "
     "allowed"),
    (f"wpkh({TPUB}/<0>/*)", "wpkh(): Multipath key path specifiers must have at least two items"),
    (f"wpkh({TPUB}/<0;0>/*)", "wpkh(): Duplicated key path value 0 in multipath specifier"),
    (f"wsh(multi(1,{TPUB}/<0;1>/*,{TPUB}/<0;1;2>/*))",
     "Multipath derivation paths have mismatched lengths"),
])
def test_multipath_errors(desc, message):
    with pytest.raises(DescriptorError) as err:
        parse_descriptors(desc, REGTEST)
    assert str(err.value) == message


def test_single_descriptor_parsers_refuse_multipath():
    with pytest.raises(DescriptorError):
        parse_descriptor(f"wpkh({TPUB}/<0;1>/*)", REGTEST)
