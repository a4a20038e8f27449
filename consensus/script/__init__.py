"""Script: opcodes, parsing, interpreter, signature hashes and standard templates.

Public entry points (Bitcoin Core semantics throughout):

    verify.verify_input(tx, index, spent_outputs, flags, txdata=None)      raises ScriptError
    verify.verify_transaction(tx, spent_outputs, flags)                    raises ScriptError
    pool.ScriptCheckPool(workers=N).verify_many([(tx, spent_outputs, flags), ...])

Modules
    flags        verification flag bits with Core's names; MANDATORY/STANDARD sets
    errors       ScriptError(.code = Core's error name, .message = Core's text)
    interpreter  EvalScript, VerifyWitnessProgram, VerifyScript, the signature checker
    sighash      legacy, BIP143 and BIP341/342 signature hashes; PrecomputedTxData
    sigcheck     DER rules, lax DER parsing, libsecp256k1 verification, SignatureCache
    taproot      leaf/branch/tweak hashes and control blocks
    verify       the entry points above, template fast paths, ScriptExecutionCache
    pool         parallel verification in worker processes: whole batches (verify_many),
                 batches added item by item (CheckSession, a block as the chain prepares
                 it), background checks (VerifyStream, the mempool's batches)
    standard     Solver-style classification, template builders, asm output and parsing
    keys         signing helpers (ECDSA, Schnorr, taproot tweaks, whole inputs)
    num          script numbers; opcodes: opcode names
    script       operation walking, sigop counts, the shared template tests (is_p2sh,
                 witness_program, is_push_only, last_push, is_unspendable) and push
                 encodings (push_data, push_int); imported by every layer above
"""
