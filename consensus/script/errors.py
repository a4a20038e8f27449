"""ScriptError: a failed script verification, named as Bitcoin Core names it (script_error.h)."""

from __future__ import annotations

# Core's ScriptErrorString texts, keyed by the error's name without the SCRIPT_ERR_ prefix.
MESSAGES: dict[str, str] = {
    "OK": "No error",
    "UNKNOWN_ERROR": "unknown error",
    "EVAL_FALSE": (
        "Script evaluated without error but finished with a false/empty top stack element"
    ),
    "OP_RETURN": "OP_RETURN was encountered",
    "SCRIPT_SIZE": "Script is too big",
    "PUSH_SIZE": "Push value size limit exceeded",
    "OP_COUNT": "Operation limit exceeded",
    "STACK_SIZE": "Stack size limit exceeded",
    "SIG_COUNT": "Signature count negative or greater than pubkey count",
    "PUBKEY_COUNT": "Pubkey count negative or limit exceeded",
    "VERIFY": "Script failed an OP_VERIFY operation",
    "EQUALVERIFY": "Script failed an OP_EQUALVERIFY operation",
    "CHECKMULTISIGVERIFY": "Script failed an OP_CHECKMULTISIGVERIFY operation",
    "CHECKSIGVERIFY": "Script failed an OP_CHECKSIGVERIFY operation",
    "NUMEQUALVERIFY": "Script failed an OP_NUMEQUALVERIFY operation",
    "BAD_OPCODE": "Opcode missing or not understood",
    "DISABLED_OPCODE": "Attempted to use a disabled opcode",
    "INVALID_STACK_OPERATION": "Operation not valid with the current stack size",
    "INVALID_ALTSTACK_OPERATION": "Operation not valid with the current altstack size",
    "UNBALANCED_CONDITIONAL": "Invalid OP_IF construction",
    "NEGATIVE_LOCKTIME": "Negative locktime",
    "UNSATISFIED_LOCKTIME": "Locktime requirement not satisfied",
    "SIG_HASHTYPE": "Signature hash type missing or not understood",
    "SIG_DER": "Non-canonical DER signature",
    "MINIMALDATA": "Data push larger than necessary",
    "SIG_PUSHONLY": "Only push operators allowed in signatures",
    "SIG_HIGH_S": "Non-canonical signature: S value is unnecessarily high",
    "SIG_NULLDUMMY": "Dummy CHECKMULTISIG argument must be zero",
    "MINIMALIF": "OP_IF/NOTIF argument must be minimal",
    "SIG_NULLFAIL": "Signature must be zero for failed CHECK(MULTI)SIG operation",
    "DISCOURAGE_UPGRADABLE_NOPS": "NOPx reserved for soft-fork upgrades",
    "DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM": "Witness version reserved for soft-fork upgrades",
    "DISCOURAGE_UPGRADABLE_TAPROOT_VERSION": "Taproot version reserved for soft-fork upgrades",
    "DISCOURAGE_OP_SUCCESS": "OP_SUCCESSx reserved for soft-fork upgrades",
    "DISCOURAGE_UPGRADABLE_PUBKEYTYPE": "Public key version reserved for soft-fork upgrades",
    "PUBKEYTYPE": "Public key is neither compressed or uncompressed",
    "CLEANSTACK": "Stack size must be exactly one after execution",
    "WITNESS_PROGRAM_WRONG_LENGTH": "Witness program has incorrect length",
    "WITNESS_PROGRAM_WITNESS_EMPTY": "Witness program was passed an empty witness",
    "WITNESS_PROGRAM_MISMATCH": "Witness program hash mismatch",
    "WITNESS_MALLEATED": "Witness requires empty scriptSig",
    "WITNESS_MALLEATED_P2SH": "Witness requires only-redeemscript scriptSig",
    "WITNESS_UNEXPECTED": "Witness provided for non-witness script",
    "WITNESS_PUBKEYTYPE": "Using non-compressed keys in segwit",
    "SCHNORR_SIG_SIZE": "Invalid Schnorr signature size",
    "SCHNORR_SIG_HASHTYPE": "Invalid Schnorr signature hash type",
    "SCHNORR_SIG": "Invalid Schnorr signature",
    "TAPROOT_WRONG_CONTROL_SIZE": "Invalid Taproot control block size",
    "TAPSCRIPT_VALIDATION_WEIGHT": "Too much signature validation relative to witness weight",
    "TAPSCRIPT_CHECKMULTISIG": "OP_CHECKMULTISIG(VERIFY) is not available in tapscript",
    "TAPSCRIPT_MINIMALIF": "OP_IF/NOTIF argument must be minimal in tapscript",
    "TAPSCRIPT_EMPTY_PUBKEY": "Empty public key in tapscript",
    "OP_CODESEPARATOR": "Using OP_CODESEPARATOR in non-witness script",
    "SIG_FINDANDDELETE": "Signature is found in scriptCode",
    "SCRIPTNUM": "Script number overflow or non-minimal encoding",
}


# Core's JSON test vectors spell one error differently from its enum name.
_VECTOR_NAMES = {"SIG_NULLFAIL": "NULLFAIL"}


def vector_name(code: str) -> str:
    """The name script_tests.json uses for an error code (equal but for SIG_NULLFAIL)."""
    return _VECTOR_NAMES.get(code, code)


def script_error_string(code: str) -> str:
    """Core's ScriptErrorString for an error name ("unknown error" for anything else)."""
    return MESSAGES.get(code, "unknown error")


class ScriptError(Exception):
    """Script verification failed.

    code:        Core's error name without the SCRIPT_ERR_ prefix ("EVAL_FALSE", "SIG_DER", ...)
    message:     Core's human-readable text for it (what RPC puts in reject reasons)
    txid:        the failing transaction's txid (internal byte order), when known
    input_index: the failing input, when known
    """

    __slots__ = ("code", "_txid", "tx", "input_index")

    def __init__(self, code: str, txid: bytes | None = None, input_index: int | None = None):
        super().__init__(code)
        self.code = code
        self._txid = txid
        self.tx = None  # the failing transaction, whose txid is worked out only when asked
        self.input_index = input_index

    @property
    def txid(self) -> bytes | None:
        if self._txid is None and self.tx is not None:
            self._txid = self.tx.txid
        return self._txid

    @txid.setter
    def txid(self, value: bytes | None) -> None:
        self._txid = value

    @property
    def message(self) -> str:
        return script_error_string(self.code)

    def __str__(self) -> str:
        where = ""
        if self.txid is not None:
            where = f" (tx {self.txid[::-1].hex()}, input {self.input_index})"
        return f"{self.code}: {self.message}{where}"

    def __reduce__(self):
        # Keep code and location when crossing a process boundary.
        return (ScriptError, (self.code, self.txid, self.input_index))
