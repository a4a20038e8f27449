"""minibtc-cli -named as bitcoin-cli's RPCConvertNamedValues: an argument with '=' is
named only when the text before it is a parameter the CLI knows for the method; otherwise a
listed string or parseable JSON at that position is passed by position."""

from node.cli import convert_named_values


def test_base64_with_padding_is_positional():
    psbt = "cHNidP8BAHECAAAAAQ=="
    assert convert_named_values("decodepsbt", [psbt]) == {"args": [psbt]}
    assert convert_named_values("walletprocesspsbt", [psbt, "sign=false"]) == {
        "sign": False, "args": [psbt]}
    assert convert_named_values("walletprocesspsbt", [f"psbt={psbt}"]) == {"psbt": psbt}


def test_known_names_stay_named_and_json_positions_parse():
    assert convert_named_values("getblock", ["blockhash=00", "verbosity=2"]) == {
        "blockhash": "00", "verbosity": 2}
    # a label holding '=' where the method lists its strings: by position
    assert convert_named_values("getnewaddress", ["a=b"]) == {"args": ["a=b"]}
    # a name the method does not know, at a position that is no listed string: named
    assert convert_named_values("getblockhash", ["nosuch=1"]) == {"nosuch": "1"}
