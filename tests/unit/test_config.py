"""minibtcd's options as Core's ArgsManager reads them: bitcoin.conf with sections and
includeconf, negation, the chain chosen, Core's error texts, and what is logged."""

from __future__ import annotations

import pytest

from node.config import ConfigError, load_config
from node.logs import check_loglevels, debug_categories
from node.store.blockfiles import BlockFiles, load_xor_key, xor_bytes


def conf(tmp_path, text: str):
    (tmp_path / "bitcoin.conf").write_text(text)


def test_main_without_a_chain_option(tmp_path):
    assert load_config([f"-datadir={tmp_path}"]).chain == "main"
    assert load_config([f"-datadir={tmp_path}", "-regtest"]).chain == "regtest"
    conf(tmp_path, "regtest=1\n")
    assert load_config([f"-datadir={tmp_path}"]).chain == "regtest"


def test_sections_network_only_options_and_first_value_wins(tmp_path):
    conf(tmp_path, "regtest=1\nport=1\nuacomment=top\n[regtest]\nport=2\nport=3\nrpcport=4\n"
                   "uacomment=sec\n[main]\nport=5\n")
    c = load_config([f"-datadir={tmp_path}"])
    assert (c.port, c.rpcport) == (2, 4)  # top-level port is main's only; first value wins
    assert c.arg_list("uacomment") == ["sec", "top"]  # the section's first, then the top's
    c = load_config([f"-datadir={tmp_path}", "-uacomment=cli", "-port=9"])
    assert c.port == 9 and c.arg_list("uacomment") == ["cli", "sec", "top"]
    c = load_config([f"-datadir={tmp_path}", "-nouacomment"])
    assert c.arg_list("uacomment") == []  # a negation on the command line drops the file's


def test_includeconf(tmp_path):
    (tmp_path / "a.conf").write_text("uacomment=a\nincludeconf=b.conf\n")
    (tmp_path / "b.conf").write_text("uacomment=b\n")
    conf(tmp_path, "regtest=1\n[regtest]\nuacomment=main\nincludeconf=a.conf\n")
    c = load_config([f"-datadir={tmp_path}"])
    assert c.arg_list("uacomment") == ["main", "a"]  # no includes from included files
    assert c.warnings == ["warning: -includeconf cannot be used from included files; "
                          "ignoring -includeconf=b.conf"]
    (tmp_path / "a.conf").unlink()
    with pytest.raises(ConfigError, match="Failed to include configuration file a.conf"):
        load_config([f"-datadir={tmp_path}"])


@pytest.mark.parametrize("arg, message", [
    ("-nosuch", "Error: Error parsing command line arguments: Invalid parameter -nosuch"),
    ("-includeconf=x.conf", "Error: Error parsing command line arguments: -includeconf cannot "
                            'be used from commandline; -includeconf="x.conf"'),
    ("-noincludeconf=0", "-includeconf cannot be used from commandline; -includeconf=true"),
    ("-debug=abc", "Error: Unsupported logging category -debug=abc."),
    ("-debugexclude=abc", "Error: Unsupported logging category -debugexclude=abc."),
])
def test_command_line_errors_are_cores(tmp_path, arg, message):
    with pytest.raises(ConfigError) as e:
        load_config([f"-datadir={tmp_path}", arg])
    assert message in str(e.value)


def test_unknown_config_file_keys_are_ignored_with_a_log_line(tmp_path):
    conf(tmp_path, "regtest=1\nfoo=1\n[regtest]\nbar=2\n")
    c = load_config([f"-datadir={tmp_path}"])
    assert "Ignoring unknown configuration value foo" in c.warnings


def test_negation_and_booleans(tmp_path):
    c = load_config([f"-datadir={tmp_path}", "-nolisten", "-txindex", "-persistmempool=0",
                     "-nologratelimit", "-noblocksonly=0"])
    assert (c.listen, c.txindex, c.persistmempool) == (False, True, False)
    assert c.arg_bool("logratelimit", True) is False
    assert c.arg_bool("blocksonly") is True  # -noX=0 is X
    assert c.arg_bool("discover", True) is True  # unset: the default


def test_debug_clears_and_loglevels(tmp_path):
    c = load_config([f"-datadir={tmp_path}", "-debug=http", "-debug=abc", "-debug=none",
                     "-debug=rpc"])
    assert debug_categories(c.debug, c.debugexclude) == {"rpc"}
    c = load_config([f"-datadir={tmp_path}", "-debug", "-debugexclude=net"])
    on = debug_categories(c.debug, c.debugexclude)
    assert "rpc" in on and "net" not in on
    check_loglevels(["trace", "net:debug"])
    with pytest.raises(ConfigError, match="Unsupported global logging level -loglevel=abc"):
        check_loglevels(["abc"])
    with pytest.raises(ConfigError, match="category-specific logging level -loglevel=net:x"):
        check_loglevels(["net:x"])


def test_arg_log_lines_hide_secrets(tmp_path):
    conf(tmp_path, "regtest=1\n[regtest]\nrpcpassword=hunter2\nnosettings=1\n")
    c = load_config([f"-datadir={tmp_path}", "-uacomment=x"])
    assert 'Command-line arg: uacomment="x"' in c.arg_log
    assert "Config file arg: [regtest] rpcpassword=****" in c.arg_log
    assert "Config file arg: [regtest] settings=false" in c.arg_log
    assert c.settings_file is None


def test_blocksdir_must_exist(tmp_path):
    with pytest.raises(ConfigError, match='Specified blocks directory ".*nope" does not exist'):
        load_config([f"-datadir={tmp_path}", f"-blocksdir={tmp_path / 'nope'}"])
    (tmp_path / "b").mkdir()
    c = load_config([f"-datadir={tmp_path}", "-regtest", f"-blocksdir={tmp_path / 'b'}"])
    assert c.blocks_dir == tmp_path / "b" / "regtest" / "blocks"


def test_block_files_are_xored_with_their_key(tmp_path):
    magic = b"\xfa\xbf\xb5\xda"
    files = BlockFiles(tmp_path, magic)
    assert len(files.key) == 8 and any(files.key)
    raw = bytes(range(200))
    n, pos = files.write_block(raw)
    files.close()
    on_disk = (tmp_path / "blk00000.dat").read_bytes()
    assert raw not in on_disk and magic not in on_disk
    assert xor_bytes(on_disk, files.key, 0)[8:] == raw  # byte i XOR key[i % 8]
    again = BlockFiles(tmp_path, magic)  # the stored key is used again
    assert again.key == files.key and again.read_block(n, pos) == raw
    again.close()
    with pytest.raises(Exception, match="XOR-key can not be disabled"):
        load_xor_key(tmp_path, enabled=False)


def test_existing_block_files_keep_a_zero_key(tmp_path):
    (tmp_path / "blk00000.dat").write_bytes(b"")
    assert load_xor_key(tmp_path) == bytes(8)
