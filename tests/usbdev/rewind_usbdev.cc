// Placeholder until the usbfs server lands.
int main() { return 2; }
