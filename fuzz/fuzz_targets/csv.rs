//! The CSV reader and the data contract's checks on arbitrary bytes, as each of the five files:
//! never a panic, and a refusal always names its file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm_core::data::contract::{Contract, FileKind};
use pm_core::data::ingest::{BadRowPolicy, InputFile, ReadOptions, read_dataset};

const HEADERS: [&[u8]; 5] = [
    b"datetime,machineID,volt,rotate,pressure,vibration\n2015-01-01 06:00:00,1,170,450,100,40\n",
    b"datetime,machineID,errorID\n",
    b"datetime,machineID,comp\n",
    b"datetime,machineID,failure\n",
    b"machineID,model,age\n1,model3,18\n",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let kind = FileKind::ALL[usize::from(selector) % FileKind::ALL.len()];
    let policy = if selector & 0x80 == 0 { BadRowPolicy::Fail } else { BadRowPolicy::Drop };
    let names: Vec<String> = FileKind::ALL.iter().map(|k| k.file_name().to_string()).collect();
    let files: Vec<InputFile<'_>> = FileKind::ALL
        .iter()
        .enumerate()
        .map(|(i, &k)| InputFile::csv(k, &names[i], if k == kind { body } else { HEADERS[i] }))
        .collect();
    if let Err(e) = read_dataset(&files, &Contract::azure_pdm(), &ReadOptions::new(policy)) {
        assert!(e.to_string().starts_with(kind.file_name()) || names.iter().any(|n| e.to_string().starts_with(n.as_str())));
    }
});
