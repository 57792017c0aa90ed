/*
 * service_tcp.c with crypto on: the listener's master services and the
 * dmsg_connect clients run the RSA handshake in dmsg_iocom_init with a
 * fresh key pair in a temporary key directory (dmsg_crypto_set_keydir,
 * dmsg_crypto_generate_keys), every link is encrypted
 * (DMSG_IOCOMF_CRYPTED on both ends) and carries the same DBG_SHELL
 * exchanges; then a link without a key file fails with
 * DMSG_IOQ_ERROR_NORKEY.
 */
#define SERVICE_TCP_CRYPTO 1
#include "service_tcp.c"
