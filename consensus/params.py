"""Chain parameters for regtest and main, with Bitcoin Core's values (kernel/chainparams.cpp).

main is here so that real historic blocks can be validated; minibtc runs regtest networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from consensus.amounts import COIN
from consensus.block import Block, BlockHeader, merkle_root
from consensus.hashes import hex_to_hash
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from consensus.versionbits import NEVER_ACTIVE, NO_TIMEOUT, Deployment

# The genesis coinbase's scriptSig: push of 486604799 (0x1d00ffff), push of 4, and the
# Times headline; its output pays to Satoshi's uncompressed key with OP_CHECKSIG.
_GENESIS_SCRIPT_SIG = bytes.fromhex(
    "04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e"
    "206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73"
)
_GENESIS_OUTPUT_SCRIPT = bytes.fromhex(
    "4104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f355"
    "04e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac"
)


def create_genesis_block(time: int, nonce: int, bits: int, version: int, reward: int) -> Block:
    coinbase = Transaction(
        version=1,
        vin=[TxIn(OutPoint(), _GENESIS_SCRIPT_SIG, 0xFFFFFFFF)],
        vout=[TxOut(reward, _GENESIS_OUTPUT_SCRIPT)],
        locktime=0,
    )
    root, _ = merkle_root([coinbase.txid])
    header = BlockHeader(version, b"\x00" * 32, root, time, bits, nonce)
    return Block(header, [coinbase])


@dataclass(frozen=True, eq=False)  # one instance per chain: compared by identity
class ChainParams:
    name: str  # "main" or "regtest", as Core's -chain takes them
    message_start: bytes
    default_port: int
    rpc_port: int
    genesis: Block
    # Proof of work
    pow_limit: int
    pow_target_timespan: int
    pow_target_spacing: int
    pow_allow_min_difficulty_blocks: bool
    pow_no_retargeting: bool
    # Subsidy
    subsidy_halving_interval: int
    # Buried deployments: the first height at which each rule is enforced.
    bip34_height: int
    bip34_hash: bytes | None
    bip65_height: int
    bip66_height: int
    csv_height: int
    segwit_height: int
    taproot_height: int
    # Blocks whose scripts are checked with other flags than their height implies
    # (block hash -> the exact script flag names to use), as Core's script_flag_exceptions.
    script_flag_exceptions: dict[bytes, tuple[str, ...]] = field(default_factory=dict)
    # BIP9 deployments signalled in block versions (consensus.versionbits).
    deployments: tuple[Deployment, ...] = ()
    # Core's ChainTxData: (time, transactions up to then, transactions per second since),
    # for the verification progress estimate.
    chain_tx_data: tuple[int, int, float] = (0, 0, 0.0)
    # Address encodings
    pubkey_address_prefix: int = 0
    script_address_prefix: int = 5
    secret_key_prefix: int = 128
    ext_public_key_prefix: bytes = b""
    ext_secret_key_prefix: bytes = b""
    bech32_hrp: str = ""
    coinbase_maturity: int = 100

    @property
    def difficulty_adjustment_interval(self) -> int:
        return self.pow_target_timespan // self.pow_target_spacing

    @property
    def genesis_hash(self) -> bytes:
        return self.genesis.hash

    def buried_deployments(self) -> dict[str, int]:
        """getdeploymentinfo's buried deployments and their activation heights."""
        return {"bip34": self.bip34_height, "bip66": self.bip66_height,
                "bip65": self.bip65_height, "csv": self.csv_height,
                "segwit": self.segwit_height}


# -testactivationheight's names (Core's GetBuriedDeployment) and the fields they set.
_TEST_ACTIVATION_NAMES = {"segwit": "segwit_height", "bip34": "bip34_height",
                          "dersig": "bip66_height", "cltv": "bip65_height", "csv": "csv_height"}
_INT32_MAX = 2**31 - 1


def _to_int(s: str, lo: int, hi: int) -> int | None:
    """Core's ToIntegral: an optional '+'/'-' sign and decimal digits only, in range."""
    body = s[1:] if s[:1] in "+-" else s
    if not body or not body.isdigit() or not body.isascii():
        return None
    v = int(s)
    return v if lo <= v <= hi else None


def with_test_options(params: ChainParams, activation_heights: list[str] = (),
                      vbparams: list[str] = ()) -> ChainParams:
    """Core's ReadRegTestArgs: -testactivationheight=name@height moves a buried deployment,
    -vbparams=deployment:start:end[:min_activation_height] a BIP9 one. Raises ValueError with
    Core's message for a malformed value."""
    changes: dict = {}
    for arg in activation_heights:
        name, sep, value = arg.partition("@")
        if not sep:
            raise ValueError(f"Invalid format ({arg}) for -testactivationheight=name@height.")
        height = _to_int(value, -(2**31), _INT32_MAX)
        if height is None or height < 0 or height >= _INT32_MAX:
            raise ValueError(f"Invalid height value ({arg}) for "
                             "-testactivationheight=name@height.")
        if name not in _TEST_ACTIVATION_NAMES:
            raise ValueError(f"Invalid name ({arg}) for -testactivationheight=name@height.")
        changes[_TEST_ACTIVATION_NAMES[name]] = height
    deployments = list(params.deployments)
    for arg in vbparams:
        parts = arg.split(":")
        if not 3 <= len(parts) <= 4:
            raise ValueError("Version bits parameters malformed, expecting "
                             "deployment:start:end[:min_activation_height]")
        start = _to_int(parts[1], -(2**63), 2**63 - 1)
        if start is None:
            raise ValueError(f"Invalid nStartTime ({parts[1]})")
        timeout = _to_int(parts[2], -(2**63), 2**63 - 1)
        if timeout is None:
            raise ValueError(f"Invalid nTimeout ({parts[2]})")
        min_height = 0
        if len(parts) == 4:
            min_height = _to_int(parts[3], -(2**63), 2**63 - 1)
            if min_height is None:
                raise ValueError(f"Invalid min_activation_height ({parts[3]})")
        for i, d in enumerate(deployments):
            if d.name == parts[0]:
                deployments[i] = replace(d, start_time=start, timeout=timeout,
                                         min_activation_height=min_height)
                break
        else:
            raise ValueError(f"Invalid deployment ({parts[0]})")
    if deployments != list(params.deployments):
        changes["deployments"] = tuple(deployments)
    return replace(params, **changes) if changes else params


_TWO_WEEKS = 14 * 24 * 60 * 60
_TEN_MINUTES = 10 * 60

MAIN = ChainParams(
    name="main",
    message_start=bytes.fromhex("f9beb4d9"),
    default_port=8333,
    rpc_port=8332,
    genesis=create_genesis_block(1231006505, 2083236893, 0x1D00FFFF, 1, 50 * COIN),
    pow_limit=int("00000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff", 16),
    pow_target_timespan=_TWO_WEEKS,
    pow_target_spacing=_TEN_MINUTES,
    pow_allow_min_difficulty_blocks=False,
    pow_no_retargeting=False,
    subsidy_halving_interval=210_000,
    bip34_height=227_931,
    bip34_hash=hex_to_hash("000000000000024b89b42a942fe0d9fea3bb44ab7bd1b19115dd6a759c0808b8"),
    bip65_height=388_381,
    bip66_height=363_725,
    csv_height=419_328,
    segwit_height=481_824,
    taproot_height=709_632,
    script_flag_exceptions={
        # BIP16 exception: a block that violates P2SH, mined before the rule's enforcement.
        hex_to_hash("00000000000002dc756eebf4f49723ed8d30cc28a5f108eb94b1ba88ac4f9c22"): (),
        # Taproot exception (block 692261): a pre-activation spend of a v1 witness output.
        hex_to_hash("0000000000000000000f14c35b2d841e986ab5441de8c585d85ffe9c1df8a9f6"): (
            "P2SH",
            "WITNESS",
        ),
    },
    deployments=(Deployment("testdummy", 28, NEVER_ACTIVE, NO_TIMEOUT, 0, 2016, 1815),),
    chain_tx_data=(1741017141, 1161875261, 4.620728156243148),
    pubkey_address_prefix=0,
    script_address_prefix=5,
    secret_key_prefix=128,
    ext_public_key_prefix=bytes.fromhex("0488b21e"),
    ext_secret_key_prefix=bytes.fromhex("0488ade4"),
    bech32_hrp="bc",
)

REGTEST = ChainParams(
    name="regtest",
    message_start=bytes.fromhex("fabfb5da"),
    default_port=18444,
    rpc_port=18443,
    genesis=create_genesis_block(1296688602, 2, 0x207FFFFF, 1, 50 * COIN),
    pow_limit=int("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", 16),
    pow_target_timespan=24 * 60 * 60,  # one day, as Core's regtest (144-block periods)
    pow_target_spacing=_TEN_MINUTES,
    pow_allow_min_difficulty_blocks=True,
    pow_no_retargeting=True,
    subsidy_halving_interval=150,
    bip34_height=1,
    bip34_hash=None,
    bip65_height=1,
    bip66_height=1,
    csv_height=1,
    segwit_height=0,
    taproot_height=0,
    deployments=(Deployment("testdummy", 28, 0, NO_TIMEOUT, 0, 144, 108),),
    chain_tx_data=(0, 0, 0.001),
    pubkey_address_prefix=111,
    script_address_prefix=196,
    secret_key_prefix=239,
    ext_public_key_prefix=bytes.fromhex("043587cf"),
    ext_secret_key_prefix=bytes.fromhex("04358394"),
    bech32_hrp="bcrt",
)

CHAINS = {"main": MAIN, "regtest": REGTEST}


def get_params(chain: str) -> ChainParams:
    try:
        return CHAINS[chain]
    except KeyError:
        raise ValueError(f"unknown chain {chain!r} (expected one of {sorted(CHAINS)})") from None
