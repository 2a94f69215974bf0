package openssl

/*
#include <openssl/obj_mac.h>
*/
import "C"

// NID is OpenSSL's numeric identifier of an object (an algorithm, a name
// attribute, an extension). The constants have OpenSSL's values.
type NID int

// Name attributes, for [Name.GetEntry].
const (
	NID_undef                  NID = C.NID_undef
	NID_commonName             NID = C.NID_commonName
	NID_countryName            NID = C.NID_countryName
	NID_localityName           NID = C.NID_localityName
	NID_stateOrProvinceName    NID = C.NID_stateOrProvinceName
	NID_streetAddress          NID = C.NID_streetAddress
	NID_postalCode             NID = C.NID_postalCode
	NID_organizationName       NID = C.NID_organizationName
	NID_organizationalUnitName NID = C.NID_organizationalUnitName
	NID_serialNumber           NID = C.NID_serialNumber
	NID_pkcs9_emailAddress     NID = C.NID_pkcs9_emailAddress
	NID_domainComponent        NID = C.NID_domainComponent
)

// Certificate extensions.
const (
	NID_subject_alt_name         NID = C.NID_subject_alt_name
	NID_issuer_alt_name          NID = C.NID_issuer_alt_name
	NID_basic_constraints        NID = C.NID_basic_constraints
	NID_key_usage                NID = C.NID_key_usage
	NID_ext_key_usage            NID = C.NID_ext_key_usage
	NID_subject_key_identifier   NID = C.NID_subject_key_identifier
	NID_authority_key_identifier NID = C.NID_authority_key_identifier
)

// Key algorithms (see also the KeyType constants).
const (
	NID_rsaEncryption        NID = C.NID_rsaEncryption
	NID_X9_62_id_ecPublicKey NID = C.NID_X9_62_id_ecPublicKey
	NID_X9_62_prime256v1     NID = C.NID_X9_62_prime256v1
	NID_secp384r1            NID = C.NID_secp384r1
	NID_secp521r1            NID = C.NID_secp521r1
	NID_ED25519              NID = C.NID_ED25519
	NID_X25519               NID = C.NID_X25519
)
